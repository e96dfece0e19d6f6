// Cookie-authenticated writes must come from the server's own pages: a browser attaches the session
// cookie to requests that other sites' pages make (SameSite=Lax does not cover other ports of the same
// host, which count as the same site), so a write that carries the cookie needs a trusted Origin and a
// JSON body (a cross-origin page can send text/plain or form bodies without asking). Requests with an
// Authorization header are exempt: a page from elsewhere cannot set it without the token.
import type { MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { SESSION_COOKIE } from '../auth.ts';
import type { AppEnv } from '../deps.ts';
import { ApiError } from '../errors.ts';
import type { Origins } from '../origins.ts';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function sameOriginWrites(origins: Origins): MiddlewareHandler<AppEnv> {
  return async function sameOriginWritesMiddleware(c, next) {
    if (WRITES.has(c.req.method) && c.req.header('Authorization') === undefined && getCookie(c, SESSION_COOKIE) !== undefined) {
      const origin = c.req.header('Origin');
      if (origin === undefined || !origins.allows(origin, c.req.header('Host'))) {
        throw new ApiError('forbidden', `a write with the session cookie must come from the server's own origin (Origin ${origin ?? 'missing'}; PUBLIC_ORIGIN, ALLOWED_ORIGINS), or authenticate with Authorization: Bearer instead`);
      }
      const hasBody = Number(c.req.header('Content-Length') ?? 0) > 0 || c.req.header('Transfer-Encoding') !== undefined;
      const type = (c.req.header('Content-Type') ?? '').split(';')[0].trim().toLowerCase();
      if (hasBody && type !== 'application/json') {
        throw new ApiError('bad_request', `a body sent with the session cookie must be JSON (Content-Type: application/json), got ${JSON.stringify(type || 'none')}`);
      }
    }
    await next();
  };
}
