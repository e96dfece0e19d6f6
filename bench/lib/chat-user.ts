/**
 * One simulated user of `npm run load`: chats in a conversation for a few turns, then starts another;
 * mixes greedy, sampling and beam search; sometimes asks for another reply (regenerate) and often rates
 * a reply through REST. Random choices come from a seeded generator, so a run is repeatable up to
 * timing. After a refusal it waits a little (longer when rate-limited), as a client should.
 */
import { seededRng } from '../../model/decode/rng.ts';
import type { Decoding } from '../../server/protocol.ts';
import { BenchClient, PROMPTS, type RequestResult } from './ws-client.ts';

interface UserOptions {
  maxNewTokens: number;
  /** Probability that the next request regenerates the last reply instead of chatting. */
  regenerate: number;
  /** Probability that a finished reply is rated. */
  rate: number;
  seed: number;
}

interface RatingResult {
  status: number;
  ms: number;
  code: string | null;
}

export interface UserLog {
  requests: (RequestResult & { strategy: string })[];
  ratings: RatingResult[];
}

const TURNS_PER_CONVERSATION = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** greedy 40 %, sample 40 %, beam search 20 %. */
function pickDecoding(u: number, v: number, maxNewTokens: number, seed: number): Decoding {
  if (u < 0.4) return { strategy: 'greedy', max_new_tokens: maxNewTokens, repetition_penalty: 1.2 };
  if (u < 0.8) return { strategy: 'sample', max_new_tokens: maxNewTokens, temperature: 0.8, top_k: 40, seed };
  return { strategy: 'beam_search', max_new_tokens: maxNewTokens, beam_width: 2 + Math.floor(v * 3) };
}

function backoffMs(code: string): number {
  if (code === 'rate_limited') return 1000;
  if (code === 'busy') return 200;
  return 100;
}

/** Runs until `deadline` (performance.now() ms): requests sent before it finish. */
export async function runUser(client: BenchClient, opts: UserOptions, deadline: number): Promise<UserLog> {
  const rng = seededRng(opts.seed);
  const log: UserLog = { requests: [], ratings: [] };
  let conversation: number | undefined;
  let turns = 0;
  let lastReply: number | undefined;
  while (performance.now() < deadline) {
    const decoding = pickDecoding(rng(), rng(), opts.maxNewTokens, Math.floor(rng() * 1e9));
    let r: RequestResult;
    if (lastReply !== undefined && rng() < opts.regenerate) {
      r = await client.regenerate(lastReply, decoding);
    } else {
      if (turns >= TURNS_PER_CONVERSATION) {
        conversation = undefined;
        turns = 0;
      }
      r = await client.chat(PROMPTS[Math.floor(rng() * PROMPTS.length)], decoding, conversation);
      turns++;
    }
    log.requests.push({ ...r, strategy: decoding.strategy ?? 'greedy' });
    if (r.error) {
      await sleep(backoffMs(r.error.code));
      continue;
    }
    conversation = r.conversationId ?? conversation;
    lastReply = r.messageId ?? undefined;
    if (lastReply !== undefined && rng() < opts.rate) log.ratings.push(await client.rate(lastReply, rng() < 0.7 ? 1 : -1));
  }
  return log;
}
