// Requires a session: `Authorization: Bearer TOKEN` or the session cookie; sets c.var.session.
import type { MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { bearerToken, SESSION_COOKIE, sessionFromTokens } from '../auth.ts';
import type { Db } from '../../db/index.ts';
import type { AppEnv } from '../deps.ts';
import { ApiError } from '../errors.ts';

export function sessionAuth({ db }: { db: Db }): MiddlewareHandler<AppEnv> {
  return async function sessionAuthMiddleware(c, next) {
    const session = await sessionFromTokens(db, [bearerToken(c.req.header('Authorization')), getCookie(c, SESSION_COOKIE)]);
    if (!session) throw new ApiError('unauthorized', 'a session token is required: POST /api/session, then send it as `Authorization: Bearer TOKEN` or the session cookie');
    c.set('session', session);
    await next();
  };
}
