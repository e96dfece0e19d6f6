/**
 * The web client: the files of web/dist when it has been built (paths without a file fall back to
 * index.html, so client-side routes such as /dashboard work), else a page saying it is not built.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import type { AppEnv } from '../deps.ts';

const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

const PLACEHOLDER = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>rlhf-chat</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>rlhf-chat server</h1>
<p>The web client is not built (no <code>web/dist</code>). The server is running: the WebSocket API is at
<code>/ws</code>, REST under <code>/api</code>, the OpenAI-compatible API under <code>/v1</code>,
and <a href="/health">/health</a> and <a href="/metrics">/metrics</a>.</p>
</body></html>`;

export function webRoutes({ dist = WEB_DIST }: { dist?: string } = {}): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  if (!existsSync(`${dist}/index.html`)) {
    app.get('*', (c) => c.html(PLACEHOLDER));
    return app;
  }
  app.use('*', serveStatic({ root: dist }));
  app.get('*', serveStatic({ root: dist, rewriteRequestPath: () => '/index.html' }));
  return app;
}
