// POST /api/session: an anonymous session (the cookie's session again when it is still valid);
// GET /api/session: who am I.
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { SESSION_COOKIE } from '../auth.ts';
import { createSession, findSessionByToken, touchSession } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { sessionAuth } from '../middleware/session-auth.ts';
import type { SessionResponse } from '../protocol.ts';

const ONE_YEAR_S = 365 * 24 * 3600;

export function sessionRoutes(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post('/', async (c) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const existing = cookie ? await findSessionByToken(deps.db, cookie) : undefined;
    let body: SessionResponse;
    if (existing && cookie) {
      await touchSession(deps.db, existing.id);
      body = { token: cookie, session_id: existing.id };
    } else {
      deps.limits.sessionCreated(c.get('clientAddress'));
      const { session, token } = await createSession(deps.db);
      body = { token, session_id: session.id };
    }
    setCookie(c, SESSION_COOKIE, body.token, { httpOnly: true, sameSite: 'Lax', path: '/', maxAge: ONE_YEAR_S });
    return c.json(body, existing ? 200 : 201);
  });
  app.get('/', sessionAuth(deps), (c) => {
    const s = c.get('session');
    return c.json({ session_id: s.id, created_at: s.created_at.toISOString() });
  });
  return app;
}
