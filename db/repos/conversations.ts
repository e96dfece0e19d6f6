// Conversations belong to one session; deleting one deletes its messages, their ratings and pairs.
import { sql } from 'kysely';
import type { Conversation } from '../schema.ts';
import type { Db } from '../util.ts';

export async function createConversation(
  db: Db,
  { sessionId, title = '' }: { sessionId: number; title?: string },
): Promise<Conversation> {
  return db
    .insertInto('conversations')
    .values({ session_id: sessionId, title })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getConversation(db: Db, id: number): Promise<Conversation | undefined> {
  return db.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
}

/** A session's conversations, most recently active first. */
export async function listConversations(
  db: Db,
  sessionId: number,
  { limit = 100, offset = 0 }: { limit?: number; offset?: number } = {},
): Promise<Conversation[]> {
  return db
    .selectFrom('conversations')
    .selectAll()
    .where('session_id', '=', sessionId)
    .orderBy('updated_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute();
}

export async function renameConversation(db: Db, id: number, title: string): Promise<Conversation | undefined> {
  return db
    .updateTable('conversations')
    .set({ title, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes a conversation with its messages, ratings and pairs; false when there was none. */
export async function deleteConversation(db: Db, id: number): Promise<boolean> {
  const result = await db.deleteFrom('conversations').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
