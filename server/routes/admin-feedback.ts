// Admin view for the dashboard: GET /stats (feedback counts, thumbs per model version). Mounted under
// the admin middleware.
import { Hono } from 'hono';
import { feedbackStats } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';

export function adminFeedbackRoutes(deps: ServerDeps): Hono<AppEnv> {
  return new Hono<AppEnv>().get('/stats', async (c) => c.json(await feedbackStats(deps.db)));
}
