// Model versions: the public list (GET /api/models) and the admin actions that hot-swap the served
// policy (activate a version; roll back to the previously active one).
import { basename } from 'node:path';
import { Hono } from 'hono';
import { listModelVersions } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { modelVersionInfo } from '../chat/rest-bodies.ts';
import { idParam } from './body.ts';

/** The version list; `public`: checkpoints by their directory's name only (the server's paths are its own business). */
export function modelListRoute(deps: ServerDeps, { public: isPublic = true } = {}): Hono<AppEnv> {
  return new Hono<AppEnv>().get('/', async (c) => {
    const kind = c.req.query('kind');
    const versions = await listModelVersions(deps.db, { kind: kind === 'policy' || kind === 'reward' ? kind : undefined, limit: 500 });
    const serving = deps.models.current?.id ?? null;
    const info = versions.map((v) => modelVersionInfo(v, serving));
    return c.json({ serving, versions: isPublic ? info.map((v) => ({ ...v, checkpoint_path: basename(v.checkpoint_path) })) : info });
  });
}

/** Mounted under the admin middleware. */
export function modelAdminRoutes(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.route('/', modelListRoute(deps, { public: false }));
  app.post('/rollback', async (c) => {
    const version = await deps.models.rollback();
    c.get('log').warn({ version: version.id }, 'rolled back');
    return c.json({ version: modelVersionInfo(version, deps.models.current?.id ?? null) });
  });
  app.post('/:id/activate', async (c) => {
    const version = await deps.models.activate(idParam(c));
    c.get('log').warn({ version: version.id }, 'model version activated');
    return c.json({ version: modelVersionInfo(version, deps.models.current?.id ?? null) });
  });
  return app;
}
