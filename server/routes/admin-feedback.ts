// Admin views for the dashboard: GET /stats (feedback counts, thumbs per model version) and GET /runs
// (training runs, newest first). Mounted under the admin middleware.
import { Hono } from 'hono';
import { feedbackStats, listTrainingRuns } from '../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';

export function adminFeedbackRoutes(deps: ServerDeps): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .get('/stats', async (c) => c.json(await feedbackStats(deps.db)))
    .get('/runs', async (c) => c.json({ runs: await listTrainingRuns(deps.db, { limit: 100 }) }));
}
