// Reading ratings. Ratings are written only through recordRating / recordComparison (feedback.ts),
// which keep the preference pairs in line with them.
import type { ChatTurn, Rating, RatingValue } from '../schema.ts';
import type { Db } from '../util.ts';
import { findTranscripts } from './messages.ts';
import type { PageOptions } from './pairs.ts';

export async function getRating(db: Db, sessionId: number, messageId: number): Promise<Rating | undefined> {
  return db
    .selectFrom('ratings')
    .selectAll()
    .where('session_id', '=', sessionId)
    .where('message_id', '=', messageId)
    .executeTakeFirst();
}

/** A session's ratings on the messages of one conversation (to show its thumbs again). */
export async function listConversationRatings(db: Db, sessionId: number, conversationId: number): Promise<Rating[]> {
  return db
    .selectFrom('ratings')
    .innerJoin('messages', 'messages.id', 'ratings.message_id')
    .selectAll('ratings')
    .where('ratings.session_id', '=', sessionId)
    .where('messages.conversation_id', '=', conversationId)
    .orderBy('ratings.message_id')
    .execute();
}

/** A rating that is not part of any pair, for the reward model's pointwise loss. */
interface SingleRatingExport {
  id: number;
  session_id: number;
  message_id: number;
  value: RatingValue;
  reason: string | null;
  /** The conversation from its root up to the rated reply's parent. */
  prompt: ChatTurn[];
  /** The rated reply. */
  response: string;
  created_at: Date;
  updated_at: Date;
}

/** Ratings of generated replies that are neither the chosen nor the rejected reply of any pair, in id order. */
export async function listSingleRatings(
  db: Db,
  { afterId = 0, limit = 1000 }: PageOptions = {},
): Promise<SingleRatingExport[]> {
  const rows = await db
    .selectFrom('ratings as r')
    .innerJoin('messages as m', 'm.id', 'r.message_id')
    .select([
      'r.id',
      'r.session_id',
      'r.message_id',
      'r.value',
      'r.reason',
      'r.created_at',
      'r.updated_at',
      'm.parent_id',
      'm.content as response',
    ])
    .where('r.id', '>', afterId)
    .where('m.origin', '=', 'generated')
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('preference_pairs as p')
            .select('p.id')
            .where((eb) =>
              eb.or([
                eb('p.chosen_message_id', '=', eb.ref('r.message_id')),
                eb('p.rejected_message_id', '=', eb.ref('r.message_id')),
              ]),
            ),
        ),
      ),
    )
    .orderBy('r.id')
    .limit(limit)
    .execute();
  const transcripts = await findTranscripts(
    db,
    rows.flatMap((r) => (r.parent_id === null ? [] : [r.parent_id])),
  );
  return rows.map(({ parent_id, ...row }) => ({
    ...row,
    prompt: parent_id === null ? [] : (transcripts.get(parent_id) ?? []),
  }));
}
