// The feedback rules: how ratings and A/B choices become ratings and preference pairs.
// Each rule runs in one transaction (or in the caller's) and first locks the prompt message of the
// replies it touches, so that concurrent ratings of siblings (several tabs, several server replicas)
// are applied one after another and always leave the pairs their ratings imply.
import { sql } from 'kysely';
import type { Message, Rating } from '../schema.ts';
import { inTransaction, RepoError, type Db } from '../util.ts';
import { syncSiblingPairs } from './pairs.ts';

interface RecordRatingInput {
  sessionId: number;
  messageId: number;
  /** +1 / −1; 0 removes the session's rating of this message. */
  value: -1 | 0 | 1;
  reason?: string | null;
}

interface RecordRatingResult {
  /** The rating now stored, undefined after value 0. */
  rating: Rating | undefined;
  /** The ids of the pairs this message's ratings now imply (created or kept), ascending. */
  pairIds: number[];
}

/**
 * Upserts (or with value 0 deletes) the session's rating of an assistant reply, then updates the
 * `siblings` pairs it implies: this reply rated +1 and a sibling rated −1 by the same session (or the
 * reverse) form a pair; pairs that the ratings no longer imply are removed. Rating again replaces the
 * value and the reason (an omitted reason clears the old one).
 */
export async function recordRating(db: Db, input: RecordRatingInput): Promise<RecordRatingResult> {
  const { sessionId, messageId, value, reason = null } = input;
  if (value !== -1 && value !== 0 && value !== 1) {
    throw new RepoError('bad_request', `rating value must be -1, 0 or 1, got ${String(value)}`);
  }
  return inTransaction(db, async (trx) => {
    const [message] = await loadReplies(trx, [messageId]);
    await lockPrompt(trx, message.parent_id ?? message.id);
    const rating = await writeRating(trx, sessionId, messageId, value, reason);
    return { rating, pairIds: await syncSiblingPairs(trx, messageId) };
  });
}

type ComparisonChoice = 'a' | 'b' | 'tie' | 'both_bad';

interface RecordComparisonInput {
  sessionId: number;
  /** The message both replies answer (their common parent). */
  promptMessageId: number;
  aMessageId: number;
  bMessageId: number;
  choice: ComparisonChoice;
}

interface RecordComparisonResult {
  /** For 'a'/'b': the one `compare` pair. For 'tie'/'both_bad': the sibling pairs the new ratings imply. */
  pairIds: number[];
  /** For 'tie'/'both_bad': the two ratings written. */
  ratings: Rating[];
}

/**
 * Records the session's choice between two replies to the same prompt:
 * - 'a' / 'b': one pair (chosen = the winner, source `compare`). If the ratings had already implied that
 *   pair, it becomes a `compare` pair, so that later rating changes no longer remove it. Ratings are not
 *   touched: a relative judgment says nothing about either reply on its own.
 * - 'tie': no pair; both replies are rated +1 (a tie, as distinct from "both bad", means both are
 *   acceptable), kept as single ratings for the reward model's pointwise loss.
 * - 'both_bad': no pair; both replies are rated −1.
 * A new choice between the same two replies replaces the earlier `compare` pair between them.
 * The ratings written by 'tie'/'both_bad' follow the sibling rule like any rating (e.g. against a third
 * reply rated the other way).
 */
export async function recordComparison(db: Db, input: RecordComparisonInput): Promise<RecordComparisonResult> {
  const { sessionId, promptMessageId, aMessageId, bMessageId, choice } = input;
  if (!['a', 'b', 'tie', 'both_bad'].includes(choice)) {
    throw new RepoError('bad_request', `choice must be 'a', 'b', 'tie' or 'both_bad', got ${String(choice)}`);
  }
  if (aMessageId === bMessageId) throw new RepoError('bad_request', 'a comparison needs two different replies');
  return inTransaction(db, async (trx) => {
    const replies = await loadReplies(trx, [aMessageId, bMessageId]);
    for (const reply of replies) {
      if (reply.parent_id !== promptMessageId) {
        throw new RepoError('bad_request', `message ${reply.id} is not a reply to message ${promptMessageId}`);
      }
    }
    await lockPrompt(trx, promptMessageId);

    if (choice === 'a' || choice === 'b') {
      const [chosen, rejected] = choice === 'a' ? [aMessageId, bMessageId] : [bMessageId, aMessageId];
      await deleteComparePairs(trx, [[rejected, chosen]]);
      const pair = await trx
        .insertInto('preference_pairs')
        .values({
          source: 'compare',
          prompt_message_id: promptMessageId,
          chosen_message_id: chosen,
          rejected_message_id: rejected,
        })
        .onConflict((oc) => oc.columns(['chosen_message_id', 'rejected_message_id']).doUpdateSet({ source: 'compare' }))
        .returning('id')
        .executeTakeFirstOrThrow();
      return { pairIds: [pair.id], ratings: [] };
    }

    await deleteComparePairs(trx, [
      [aMessageId, bMessageId],
      [bMessageId, aMessageId],
    ]);
    const value = choice === 'tie' ? 1 : -1;
    const ratings: Rating[] = [];
    const pairIds = new Set<number>();
    // Both ratings first, then the pairs: syncing between the two writes would see a half-applied choice.
    for (const id of [aMessageId, bMessageId]) ratings.push((await writeRating(trx, sessionId, id, value, null))!);
    for (const id of [aMessageId, bMessageId]) {
      for (const pairId of await syncSiblingPairs(trx, id)) pairIds.add(pairId);
    }
    return { pairIds: [...pairIds].sort((x, y) => x - y), ratings };
  });
}

/**
 * New user feedback since `since` (null: ever), for scheduling training runs: `siblings`/`compare` pairs
 * created, and ratings created or changed.
 */
export async function countNewFeedback(db: Db, since: Date | null): Promise<{ pairs: number; ratings: number }> {
  const after = since ?? new Date(0);
  const row = await db
    .selectNoFrom((eb) => [
      eb
        .selectFrom('preference_pairs')
        .select(eb.fn.countAll<number>().as('n'))
        .where('source', 'in', ['siblings', 'compare'])
        .where('created_at', '>', after)
        .as('pairs'),
      eb
        .selectFrom('ratings')
        .select(eb.fn.countAll<number>().as('n'))
        .where('updated_at', '>', after)
        .as('ratings'),
    ])
    .executeTakeFirstOrThrow();
  return { pairs: Number(row.pairs), ratings: Number(row.ratings) };
}

async function deleteComparePairs(trx: Db, pairs: [chosen: number, rejected: number][]): Promise<void> {
  await trx
    .deleteFrom('preference_pairs')
    .where('source', '=', 'compare')
    .where((eb) =>
      eb.or(
        pairs.map(([chosen, rejected]) =>
          eb.and([eb('chosen_message_id', '=', chosen), eb('rejected_message_id', '=', rejected)]),
        ),
      ),
    )
    .execute();
}

/** Loads generated replies by id, in the given order; RepoError when one is missing or not a reply the model wrote. */
async function loadReplies(trx: Db, ids: number[]): Promise<Message[]> {
  const rows = await trx.selectFrom('messages').selectAll().where('id', 'in', ids).execute();
  return ids.map((id) => {
    const message = rows.find((m) => m.id === id);
    if (!message) throw new RepoError('not_found', `message ${id} does not exist`);
    if (message.role !== 'assistant') {
      throw new RepoError('bad_request', `message ${id} is a ${message.role} message; only assistant replies are rated`);
    }
    if (message.origin !== 'generated') {
      throw new RepoError('not_generated', `message ${id} was sent by the client, not written by the model; only the model's replies are rated`);
    }
    return message;
  });
}

/** Serializes the rules over one sibling group (a no-op with PGlite's single connection). */
async function lockPrompt(trx: Db, promptId: number): Promise<void> {
  await trx.selectFrom('messages').select('id').where('id', '=', promptId).forNoKeyUpdate().execute();
}

async function writeRating(
  trx: Db,
  sessionId: number,
  messageId: number,
  value: -1 | 0 | 1,
  reason: string | null,
): Promise<Rating | undefined> {
  if (value === 0) {
    await trx.deleteFrom('ratings').where('session_id', '=', sessionId).where('message_id', '=', messageId).execute();
    return undefined;
  }
  return trx
    .insertInto('ratings')
    .values({ session_id: sessionId, message_id: messageId, value, reason })
    .onConflict((oc) =>
      oc.columns(['session_id', 'message_id']).doUpdateSet({ value, reason, updated_at: sql`now()` }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}
