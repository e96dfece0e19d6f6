/**
 * Start-up sweep of replies left without an end by a process that died mid-stream (SIGKILL, crash,
 * power loss): a reply row is written empty when its generation starts and completed when it ends, so
 * such a row keeps a null finish_reason and would look like a reply still being generated for ever.
 * They are marked `interrupted`.
 *
 * Which rows are safe to mark depends on who else may be generating:
 * - Embedded PGlite is opened by one process only (its data directory is locked), so at start-up no
 *   reply can be in progress anywhere: every unfinished reply is interrupted.
 * - PostgreSQL may be shared by several replicas, and another one may be streaming a reply right now.
 *   Only rows older than STALE_REPLY_MS are marked: far longer than any generation takes (at most
 *   MAX_NEW_TOKENS tokens, seconds on this model even when queued), so a row that old has no living
 *   writer. Younger orphans stay null until a later start-up.
 */
import type { Logger } from 'pino';
import { markInterruptedReplies, type DatabaseHandle } from '../../db/index.ts';

export const STALE_REPLY_MS = 10 * 60_000;

export async function sweepInterruptedReplies(database: Pick<DatabaseHandle, 'db' | 'kind'>, log: Logger): Promise<number[]> {
  const ids = await markInterruptedReplies(database.db, database.kind === 'pglite' ? {} : { olderThanMs: STALE_REPLY_MS });
  if (ids.length > 0) log.warn({ count: ids.length, message_ids: ids.slice(0, 20) }, 'replies left unfinished by an earlier run marked interrupted');
  return ids;
}
