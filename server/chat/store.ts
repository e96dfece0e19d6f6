// Storing a reply: the new turns and the (empty) reply rows in one statement when generation
// starts, and the reply's text, finish reason, token counts, timings and model version when it ends.
import type { DecodeOptions } from '../../model/decode/options.ts';
import { finishMessages, insertTurn, isConnectionError, type Db, type FinishReason, type MessageEnd, type MessageTimings } from '../../db/index.ts';
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
/** Reply ends written by one statement at most. */
const MAX_GROUP = 64;

type ReplyEnd = { text: string; finishReason: FinishReason; modelVersionId?: number; promptTokens?: number; completionTokens?: number; timings: MessageTimings; seed?: number; decoding?: DecodeOptions };

interface Waiting {
  end: MessageEnd;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of reply ends, one writer per database: an end that arrives while another group is
 * being written waits and goes out with the others in one statement. Batched replies end at the same
 * step, so under load their ends come together; one statement for eight costs about what two single
 * ones do on embedded PGlite. If a group fails for any reason but a lost connection, its ends are
 * written one by one, so that one bad row does not fail the others.
 */
class ReplyEndWriter {
  private readonly waiting: Waiting[] = [];
  private writing = false;

  constructor(private readonly db: Db) {}

  store(end: MessageEnd): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ end, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0, MAX_GROUP);
      try {
        await this.write(group.map((w) => w.end));
        group.forEach((w) => w.resolve());
      } catch (err) {
        // A database still unreachable after the retries fails the whole group at once.
        if (group.length === 1 || isConnectionError(err)) group.forEach((w) => w.reject(err));
        else for (const w of group) await this.write([w.end]).then(w.resolve, w.reject);
      }
    }
    this.writing = false;
  }

  /**
   * The update sets absolute values, so retrying it after a connection error (even one that hit
   * after the commit) is safe.
   */
  private async write(ends: MessageEnd[]): Promise<void> {
    const deadline = Date.now() + STORE_RETRY_MS;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        await finishMessages(this.db, ends);
        return;
      } catch (err) {
        if (!isConnectionError(err) || Date.now() + delay > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}

const writers = new WeakMap<Db, ReplyEndWriter>();

/** Stores a reply's end (grouped with the other replies ending meanwhile, see ReplyEndWriter). */
export function finishReply(db: Db, id: number, end: ReplyEnd): Promise<void> {
  let writer = writers.get(db);
  if (!writer) writers.set(db, (writer = new ReplyEndWriter(db)));
  return writer.store({
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
