// Per request: an id (the caller's X-Request-Id when sane, else a fresh one; echoed back), a child
// logger carrying it, one log line when the response is ready, and the http_requests_total metric.
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from 'pino';
import type { AppEnv } from '../deps.ts';
import type { Metrics } from '../metrics.ts';

export function requestContext({ log, metrics, header = 'X-Request-Id' }: { log: Logger; metrics: Metrics; header?: string }): MiddlewareHandler<AppEnv> {
  return async function requestContextMiddleware(c, next) {
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
