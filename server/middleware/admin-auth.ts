// Requires `Authorization: Bearer ADMIN_TOKEN`.
import type { MiddlewareHandler } from 'hono';
import { bearerToken, isAdminToken } from '../auth.ts';
import type { AppEnv } from '../deps.ts';
import { ApiError } from '../errors.ts';

export function adminAuth({ token }: { token: string }): MiddlewareHandler<AppEnv> {
  return async function adminAuthMiddleware(c, next) {
    if (!isAdminToken(bearerToken(c.req.header('Authorization')), token)) {
      throw new ApiError('unauthorized', 'admin routes need `Authorization: Bearer ADMIN_TOKEN`');
    }
    await next();
  };
}
