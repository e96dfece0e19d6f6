/**
 * GET /health: liveness and readiness in one answer — 200 when the database answers and a model is
 * loaded, 503 otherwise (the body says which): also at once when the engine worker has exited, until
 * its replacement has loaded the model again. Served from the main thread, so a long forward pass in
 * the engine worker never delays it. GET /metrics: Prometheus text.
 */
import { Hono } from 'hono';
import { pingDatabase } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';

const DB_TIMEOUT_MS = 2000;

async function databaseOk(deps: ServerDeps): Promise<{ ok: boolean; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${DB_TIMEOUT_MS} ms`)), DB_TIMEOUT_MS)));
    await Promise.race([pingDatabase(deps.db), timeout]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get('/health', async (c) => {
    const db = await databaseOk(deps);
    const model = deps.engine.activeModel;
    const serving = deps.models.current;
    const ready = db.ok && model !== null && !deps.replies.closing;
    return c.json(
      {
        status: ready ? 'ok' : 'unavailable',
        live: true,
        ready,
        database: { kind: deps.dbKind, ...db },
        model: { loaded: model !== null, version: serving?.id ?? null, sha256: serving?.sha256 ?? null, params: model?.params ?? null },
        engine: { running: deps.engine.running, restarts: deps.engine.restarts },
        backend: { name: deps.engine.engine.name, package: deps.engine.engine.package, simd: deps.engine.engine.simd ?? null },
        requests_in_flight: deps.engine.requestsInFlight,
        uptime_s: Math.round(process.uptime()),
      },
      ready ? 200 : 503,
    );
  });
  app.get('/metrics', async (c) => {
    c.header('Content-Type', deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });
  return app;
}
