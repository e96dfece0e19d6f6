/**
 * What an online run learns from, read from the feedback store: every preference pair (user pairs
 * from regenerations and A/B choices, imported and bootstrap ones), every single rating without a
 * sibling, and recent user prompts. A fixed share of the user pairs (by id) never trains: it decides
 * whether a new reward model is kept.
 */
import type { Db } from '../../db/util.ts';
import { exportPairs } from '../../db/repos/pairs.ts';
import { listSingleRatings } from '../../db/repos/ratings.ts';
import { listRecentUserPrompts } from '../../db/repos/messages.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import type { PreferencePair, RatedReply } from '../reward/pairs.ts';

interface RunData {
  pairs: PreferencePair[];
  heldOutPairs: PreferencePair[];
  ratings: RatedReply[];
  prompts: ChatMessage[][];
  /** Ids of the pairs trained on (recorded as used by the versions the run publishes). */
  trainedPairIds: number[];
}

const PAGE = 1000;

function turns(t: { role: string; content: string }[]): ChatMessage[] {
  return t.filter((x) => x.role === 'user' || x.role === 'assistant' || x.role === 'system') as ChatMessage[];
}

export async function collectRunData(db: Db, opts: { heldOutEvery: number; maxPrompts: number }): Promise<RunData> {
  const pairs: PreferencePair[] = [];
  const heldOutPairs: PreferencePair[] = [];
  const trainedPairIds: number[] = [];
  for (let afterId = 0; ; ) {
    const page = await exportPairs(db, { afterId, limit: PAGE });
    for (const p of page) {
      const pair: PreferencePair = { prompt: turns(p.prompt), chosen: p.chosen, rejected: p.rejected, source: p.source };
      const user = p.source === 'siblings' || p.source === 'compare';
      if (user && opts.heldOutEvery > 0 && p.id % opts.heldOutEvery === 0) heldOutPairs.push(pair);
      else {
        pairs.push(pair);
        trainedPairIds.push(p.id);
      }
    }
    if (page.length < PAGE) break;
    afterId = page[page.length - 1].id;
  }
  const ratings: RatedReply[] = [];
  for (let afterId = 0; ; ) {
    const page = await listSingleRatings(db, { afterId, limit: PAGE });
    for (const r of page) ratings.push({ prompt: turns(r.prompt), reply: r.response, label: r.value > 0 ? 1 : 0, source: 'user' });
    if (page.length < PAGE) break;
    afterId = page[page.length - 1].id;
  }
  const prompts = (await listRecentUserPrompts(db, opts.maxPrompts)).map(turns).filter((t) => t.length > 0);
  return { pairs, heldOutPairs, ratings, prompts, trainedPairIds };
}
