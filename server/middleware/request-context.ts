// Per request: the client's address, an id (the caller's X-Request-Id when sane, else a fresh one; echoed back), a child
// logger carrying it, one log line when the response is ready, and the http_requests_total metric.
import { randomUUID } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from 'pino';
import { clientAddress } from '../client-address.ts';
import type { AppEnv } from '../deps.ts';
import type { Metrics } from '../metrics.ts';

/** The TCP peer, when the app runs on a node server (not when a test calls `app.fetch` directly). */
function peerAddress(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

export function requestContext({ log, metrics, trustProxy, header = 'X-Request-Id' }: { log: Logger; metrics: Metrics; trustProxy: number; header?: string }): MiddlewareHandler<AppEnv> {
  return async function requestContextMiddleware(c, next) {
    c.set('clientAddress', clientAddress(peerAddress(c), c.req.header('X-Forwarded-For'), trustProxy));
    const given = c.req.header(header);
    const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    const reqLog = log.child({ req_id: requestId });
    c.set('requestId', requestId);
    c.set('log', reqLog);
    c.header(header, requestId);
    const t0 = performance.now();
    await next();
    const route = routePath(c);
    const status = c.res.status;
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(status) });
    const line = { method: c.req.method, path: c.req.path, route, status, ms: Math.round(performance.now() - t0) };
    if (status >= 500) reqLog.error(line, 'request');
    else reqLog.info(line, 'request');
  };
}
