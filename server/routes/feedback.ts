// REST twins of the `rate` and `choose` frames (for /v1 users and scripts). Mounted at /api, so the
// session middleware is per route rather than app.use (which would cover all of /api).
import { Hono } from 'hono';
import { chooseReply, rateReply } from '../chat/feedback.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { sessionAuth } from '../middleware/session-auth.ts';
import { ChoiceRequestSchema, RatingRequestSchema, type ChosenFrame, type RatedFrame } from '../protocol.ts';
import { idParam, readJson } from './body.ts';

export function feedbackRoutes(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const auth = sessionAuth(deps);
  app.post('/messages/:id/rating', auth, async (c) => {
    const messageId = idParam(c);
    const { value, reason } = await readJson(c, RatingRequestSchema);
    deps.limits.feedback({ sessionId: c.get('session').id, address: c.get('clientAddress') });
    const pairs = await rateReply(deps, c.get('session').id, { messageId, value, reason });
    const body: RatedFrame = { type: 'rated', message_id: messageId, value, pairs };
    return c.json(body);
  });
  app.post('/comparisons', auth, async (c) => {
    const choice = await readJson(c, ChoiceRequestSchema);
    deps.limits.feedback({ sessionId: c.get('session').id, address: c.get('clientAddress') });
    const pairs = await chooseReply(deps, c.get('session').id, choice);
    const body: ChosenFrame = { type: 'chosen', ...choice, pairs };
    return c.json(body);
  });
  return app;
}
