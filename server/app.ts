/**
 * The HTTP routes as one hono app (the WebSocket endpoint is attached to the node server, see
 * ws/upgrade.ts):
 *   /health, /metrics                       health and Prometheus metrics
 *   /api/session                            anonymous sessions
 *   /api/conversations[/:id]                a session's conversations and message trees
 *   /api/messages/:id/rating, /api/comparisons   ratings and A/B choices
 *   /api/models                             model versions (public)
 *   /api/admin/...                          export, stats, train + runs, activate / roll back (Bearer ADMIN_TOKEN)
 *   /v1/...                                 OpenAI-compatible chat completions
 *   /                                       the web client
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import type { AppEnv, ServerDeps } from './deps.ts';
import { ApiError, errorBody, onError } from './errors.ts';
import { adminAuth } from './middleware/admin-auth.ts';
import { requestContext } from './middleware/request-context.ts';
import { sameOriginWrites } from './middleware/same-origin-writes.ts';
import { conversationRoutes } from './routes/conversations.ts';
import { adminFeedbackRoutes } from './routes/admin-feedback.ts';
import { adminTrainingRoutes } from './routes/admin-training.ts';
import { exportRoute } from './routes/export.ts';
import { feedbackRoutes } from './routes/feedback.ts';
import { healthRoutes } from './routes/health.ts';
import { modelAdminRoutes, modelListRoute } from './routes/models.ts';
import { openaiRoutes } from './routes/openai/completions.ts';
import { sessionRoutes } from './routes/session.ts';
import { webRoutes } from './routes/web.ts';

export function createApp(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { maxFrameBytes } = deps.config.limits;
  const limitBody = bodyLimit({
    maxSize: maxFrameBytes,
    onError: (c) => c.json(errorBody(new ApiError('too_large', `the body is larger than ${maxFrameBytes} bytes (MAX_FRAME_BYTES)`)), 413),
  });
  app.use(requestContext({ log: deps.log, metrics: deps.metrics, trustProxy: deps.config.trustProxy }));
  // On every response: the web client loads only its own scripts, styles and sockets, and no page may frame it.
  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        // uPlot and the composer size elements through inline style attributes.
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
      xFrameOptions: 'DENY',
      xContentTypeOptions: 'nosniff',
      referrerPolicy: 'no-referrer',
    }),
  );
  app.use('/api/*', limitBody);
  app.use('/v1/*', limitBody);
  app.use('/api/*', sameOriginWrites(deps.origins));
  app.use('/v1/*', sameOriginWrites(deps.origins));

  app.route('/', healthRoutes(deps));
  app.route('/api/session', sessionRoutes(deps));
  app.route('/api/conversations', conversationRoutes(deps));
  app.route('/api', feedbackRoutes(deps));
  app.route('/api/models', modelListRoute(deps));

  const admin = new Hono<AppEnv>();
  admin.use(adminAuth({ token: deps.adminToken }));
  admin.route('/export', exportRoute(deps));
  admin.route('/models', modelAdminRoutes(deps));
  admin.route('/', adminFeedbackRoutes(deps));
  admin.route('/', adminTrainingRoutes(deps));
  app.route('/api/admin', admin);
  // The name for the export, kept as an alias.
  app.use('/api/feedback/export', adminAuth({ token: deps.adminToken }));
  app.route('/api/feedback/export', exportRoute(deps));

  app.route('/v1', openaiRoutes(deps));
  const unknown = (c: { req: { method: string; path: string } }) => {
    throw new ApiError('not_found', `no route ${c.req.method} ${c.req.path}`);
  };
  app.all('/api/*', unknown);
  app.all('/v1/*', unknown);
  app.route('/', webRoutes());
  app.notFound((c) => c.json(errorBody(new ApiError('not_found', `no route ${c.req.method} ${c.req.path}`)), 404));
  app.onError(onError);
  return app;
}
