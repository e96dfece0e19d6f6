// Storing a reply: the new turns and the (empty) reply rows in one statement when generation
// starts, and the reply's text, finish reason, token counts, timings and model version when it ends.
import type { DecodeOptions } from '../../model/decode/options.ts';
import { insertTurn, isConnectionError, updateMessage, type Db, type FinishReason, type MessageTimings } from '../../db/index.ts';
import type { ReplyTarget } from './targets.ts';

export interface StoredTurn {
  conversationId: number;
  /** The message the replies answer. */
  parentId: number | null;
  /** One per reply, in order. */
  replyIds: number[];
}

/** A conversation title from its first message: whitespace collapsed, at most 80 characters. */
function titleFrom(content: string): string {
  const flat = content.replace(/\s+/g, ' ').trim();
  if (flat.length <= 80) return flat;
  // Not between the two halves of a surrogate pair (a lone half is not valid text).
  const cut = /[\ud800-\udbff]/.test(flat[78]) ? 78 : 79;
  return `${flat.slice(0, cut)}…`;
}

export async function storeTurn(
  db: Db,
  sessionId: number,
  target: ReplyTarget,
  replies: { decoding: DecodeOptions }[],
): Promise<StoredTurn> {
  const firstUser = target.newTurns.find((t) => t.role === 'user') ?? target.newTurns[0];
  return insertTurn(db, {
    conversationId: target.conversationId,
    sessionId,
    title: titleFrom(firstUser?.content ?? ''),
    parentId: target.parentId,
    // Client turns (a /v1 history's "assistant" turns too) are context, never the model's replies.
    turns: target.newTurns.map((t) => ({ role: t.role, content: t.content })),
    replies: replies.map((r) => ({ decoding: { ...r.decoding } })),
  });
}

/**
 * How long storing a reply's end is retried while the database cannot be reached (a restart, a
 * failover): the reply was generated and streamed without it, and would otherwise be lost and its row
 * left looking unfinished. Bounded, because shutdown waits for running replies.
 */
const STORE_RETRY_MS = 30_000;

/**
 * Stores a reply's end. The update sets absolute values, so retrying it after a connection error
 * (even one that hit after the commit) is safe.
 */
export async function finishReply(
  db: Db,
  id: number,
  end: { text: string; finishReason: FinishReason; modelVersionId?: number; promptTokens?: number; completionTokens?: number; timings: MessageTimings; seed?: number; decoding?: DecodeOptions },
): Promise<void> {
  const deadline = Date.now() + STORE_RETRY_MS;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await storeEnd(db, id, end);
    } catch (err) {
      if (!isConnectionError(err) || Date.now() + delay > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

async function storeEnd(db: Db, id: number, end: Parameters<typeof finishReply>[2]): Promise<void> {
  await updateMessage(db, id, {
    content: end.text,
    ...(end.modelVersionId !== undefined && { modelVersionId: end.modelVersionId }),
    finishReason: end.finishReason,
    ...(end.promptTokens !== undefined && { promptTokens: end.promptTokens }),
    ...(end.completionTokens !== undefined && { completionTokens: end.completionTokens }),
    timings: end.timings,
    // The seed a sampled reply really used, so that it can be reproduced.
    ...(end.seed !== undefined && end.decoding && end.decoding.seed === undefined && { decoding: { ...end.decoding, seed: end.seed } }),
  });
}
