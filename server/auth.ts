/**
 * Who is calling: a session token from `Authorization: Bearer`, the HttpOnly `session` cookie, or (for
 * the WebSocket, whose browser API cannot set headers) `?token=`; and the admin token. Which browser
 * origins are trusted is origins.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { findSessionByToken, type Db, type Session } from '../db/index.ts';

export const SESSION_COOKIE = 'session';

export function bearerToken(authorization: string | undefined | null): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return match?.[1];
}

export function cookieValue(cookieHeader: string | undefined | null, name: string): string | undefined {
  for (const part of (cookieHeader ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The session of the first token that names one (header, then query, then cookie). */
export async function sessionFromTokens(db: Db, tokens: (string | undefined | null)[]): Promise<Session | undefined> {
  for (const token of tokens) {
    if (!token || token.length > 256) continue;
    const session = await findSessionByToken(db, token);
    if (session) return session;
  }
  return undefined;
}

/** Constant-time comparison of a presented admin token with the configured one. */
export function isAdminToken(presented: string | undefined, adminToken: string): boolean {
  if (!presented) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(presented), digest(adminToken));
}
