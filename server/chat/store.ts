// Storing a reply: the new turns and the (empty) reply rows in one statement when generation
// starts, and the reply's text, finish reason, token counts, timings and model version when it ends.
import type { DecodeOptions } from '../../model/decode/options.ts';
import { finishMessages, insertTurn, insertTurns, isConnectionError, type Db, type FinishReason, type MessageEnd, type MessageTimings, type NewTurn, type StoredTurnIds } from '../../db/index.ts';
import { GroupCommit, perDatabase } from './group-commit.ts';
import type { ReplyTarget } from './targets.ts';

export type StoredTurn = StoredTurnIds;

/** A conversation title from its first message: whitespace collapsed, at most 80 characters. */
function titleFrom(content: string): string {
  const flat = content.replace(/\s+/g, ' ').trim();
  if (flat.length <= 80) return flat;
  // Not between the two halves of a surrogate pair (a lone half is not valid text).
  const cut = /[\ud800-\udbff]/.test(flat[78]) ? 78 : 79;
  return `${flat.slice(0, cut)}…`;
}

/**
 * Stores a turn's rows (grouped with the other turns stored meanwhile, see GroupCommit): a reply's
 * first token waits for them, and under load the database's time per turn is what limits replies/s.
 */
export async function storeTurn(
  db: Db,
  sessionId: number,
  target: ReplyTarget,
  replies: { decoding: DecodeOptions }[],
): Promise<StoredTurn> {
  const firstUser = target.newTurns.find((t) => t.role === 'user') ?? target.newTurns[0];
  return turnWriter(db).write({
    conversationId: target.conversationId,
    sessionId,
    title: titleFrom(firstUser?.content ?? ''),
    parentId: target.parentId,
    // Client turns (a /v1 history's "assistant" turns too) are context, never the model's replies.
    turns: target.newTurns.map((t) => ({ role: t.role, content: t.content })),
    replies: replies.map((r) => ({ decoding: { ...r.decoding } })),
  });
}

/** Turns written by one statement at most. */
const MAX_TURN_GROUP = 32;

// A lone turn keeps insertTurn's chained statement: on in-memory PGlite 1.0-1.2 ms median against
// 1.6-1.8 ms for insertTurns with one turn, and the lone turn is the idle reply's first-token wait.
const turnWriter = perDatabase(
  (db: Db) =>
    new GroupCommit<NewTurn, StoredTurn>({
      one: (turn) => insertTurn(db, turn),
      group: (turns) => insertTurns(db, turns),
      maxGroup: MAX_TURN_GROUP,
    }),
);

/**
 * How long storing a reply's end is retried while the database cannot be reached (a restart, a
 * failover): the reply was generated and streamed without it, and would otherwise be lost and its row
 * left looking unfinished. Bounded, because shutdown waits for running replies.
 */
const STORE_RETRY_MS = 30_000;
/** Reply ends written by one statement at most. */
const MAX_END_GROUP = 64;

type ReplyEnd = { text: string; finishReason: FinishReason; modelVersionId?: number; promptTokens?: number; completionTokens?: number; timings: MessageTimings; seed?: number; decoding?: DecodeOptions };

/**
 * Writes reply ends, retrying while the database cannot be reached. The update sets absolute values,
 * so retrying it after a connection error (even one that hit after the commit) is safe.
 */
async function writeEnds(db: Db, ends: MessageEnd[]): Promise<void> {
  const deadline = Date.now() + STORE_RETRY_MS;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
    try {
      await finishMessages(db, ends);
      return;
    } catch (err) {
      if (!isConnectionError(err) || Date.now() + delay > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/**
 * Batched replies end at the same step, so under load their ends come together; one statement for
 * eight costs about what two single ones do on embedded PGlite.
 */
const endWriter = perDatabase(
  (db: Db) =>
    new GroupCommit<MessageEnd, void>({
      one: (end) => writeEnds(db, [end]),
      group: async (ends) => {
        await writeEnds(db, ends);
        return ends.map(() => undefined);
      },
      maxGroup: MAX_END_GROUP,
    }),
);

/** Stores a reply's end (grouped with the other replies ending meanwhile, see GroupCommit). */
export function finishReply(db: Db, id: number, end: ReplyEnd): Promise<void> {
  return endWriter(db).write({
    id,
    content: end.text,
    finishReason: end.finishReason,
    timings: end.timings,
    ...(end.modelVersionId !== undefined && { modelVersionId: end.modelVersionId }),
    ...(end.promptTokens !== undefined && { promptTokens: end.promptTokens }),
    ...(end.completionTokens !== undefined && { completionTokens: end.completionTokens }),
    // The seed a sampled reply really used, so that it can be reproduced.
    ...(end.seed !== undefined && end.decoding && end.decoding.seed === undefined && { decoding: { ...end.decoding, seed: end.seed } }),
  });
}
