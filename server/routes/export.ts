/**
 * GET /api/admin/export: the feedback as JSONL in TRL's conversational formats, paged through the
 * database 1000 rows at a time.
 * - default (`?kind=pairs`): preference pairs `{"prompt":[turns],"chosen":[reply],"rejected":[reply], ids…}`
 * - `?kind=ratings`: single ratings outside any pair, unpaired-preference style
 *   `{"prompt":[turns],"completion":[reply],"label":true|false, ids…}`
 * `?after_id=N` starts after a row id; `?source=siblings,compare` filters pairs.
 */
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { exportPairs, listSingleRatings, PAIR_SOURCES, type PairSource } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { ApiError } from '../errors.ts';

const PAGE = 1000;
const reply = (content: string) => [{ role: 'assistant', content }];

export function exportRoute(deps: ServerDeps): Hono<AppEnv> {
  return new Hono<AppEnv>().get('/', (c) => {
    const kind = c.req.query('kind') ?? 'pairs';
    if (kind !== 'pairs' && kind !== 'ratings') throw new ApiError('bad_request', `kind must be pairs or ratings, got ${JSON.stringify(kind)}`);
    const afterId = Number(c.req.query('after_id') ?? 0);
    if (!Number.isSafeInteger(afterId) || afterId < 0) throw new ApiError('bad_request', 'after_id must be a non-negative integer');
    // `?source=` (nothing listed) is no filter, as an absent one.
    const listed = c.req.query('source')?.split(',').filter(Boolean);
    const sources = listed?.length ? listed : undefined;
    if (sources?.some((s) => !(PAIR_SOURCES as readonly string[]).includes(s))) throw new ApiError('bad_request', `source must be among ${PAIR_SOURCES.join(', ')}`);
    c.header('Content-Type', 'application/x-ndjson; charset=utf-8');
    c.header('Content-Disposition', `attachment; filename="${kind}.jsonl"`);
    return stream(c, async (out) => {
      let cursor = afterId;
      for (;;) {
        const lines =
          kind === 'pairs'
            ? (await exportPairs(deps.db, { afterId: cursor, limit: PAGE, sources: sources as PairSource[] | undefined })).map(({ chosen, rejected, ...p }) => ({
                ...p,
                chosen: reply(chosen),
                rejected: reply(rejected),
              }))
            : (await listSingleRatings(deps.db, { afterId: cursor, limit: PAGE })).map(({ response, value, ...r }) => ({
                ...r,
                completion: reply(response),
                label: value > 0,
                value,
              }));
        if (lines.length === 0) break;
        await out.write(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
        cursor = lines.at(-1)!.id;
        if (lines.length < PAGE) break;
      }
    });
  });
}
