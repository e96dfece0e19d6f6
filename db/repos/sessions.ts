// Anonymous sessions. The bearer token is handed to the client once; only its sha256 is stored.
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Session } from '../schema.ts';
import type { Db } from '../util.ts';

/** Hex sha256 of a session token, as stored in `sessions.token_hash`. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random session token (256 bits, base64url). */
function newSessionToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Creates a session for `token` (a fresh random one by default) and returns both. */
export async function createSession(
  db: Db,
  token: string = newSessionToken(),
): Promise<{ session: Session; token: string }> {
  const session = await db
    .insertInto('sessions')
    .values({ token_hash: hashToken(token) })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { session, token };
}

export async function findSessionByToken(db: Db, token: string): Promise<Session | undefined> {
  return db.selectFrom('sessions').selectAll().where('token_hash', '=', hashToken(token)).executeTakeFirst();
}

/** Records activity: sets `last_seen_at` to now. */
export async function touchSession(db: Db, id: number): Promise<void> {
  await db.updateTable('sessions').set({ last_seen_at: sql`now()` }).where('id', '=', id).execute();
}
