/**
 * The WebSocket endpoint `/ws` on the HTTP server's port: the upgrade is refused (plain HTTP status)
 * unless the Origin is allowed and a session token (`?token=` or the session cookie) is valid.
 * Frames over MAX_FRAME_BYTES close the socket with 1009 (ws's maxPayload). Dead peers are found by
 * ping/pong and terminated, which cancels their generations.
 */
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { cookieValue, SESSION_COOKIE, sessionFromTokens } from '../auth.ts';
import { clientAddress } from '../client-address.ts';
import type { ServerDeps } from '../deps.ts';
import type { ServerFrame } from '../protocol.ts';
import { Connection } from './connection.ts';

const HEARTBEAT_MS = 30_000;

interface WebSocketEndpoint {
  broadcast(frame: ServerFrame): void;
  /** Closes every socket (1001 going away) and stops accepting upgrades. */
  close(): void;
}

function refuse(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: { message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export function attachWebSocket(server: Server, deps: ServerDeps): WebSocketEndpoint {
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.config.limits.maxFrameBytes, perMessageDeflate: false });
  const alive = new WeakMap<WebSocket, boolean>();
  let nextConnection = 1;

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'no WebSocket endpoint here; use /ws');
    if (deps.replies.closing) return refuse(socket, 503, 'the server is shutting down');
    // Browsers always send Origin on upgrades; programs (no Origin) are not subject to it.
    const origin = req.headers.origin;
    if (origin !== undefined && !deps.origins.allows(origin, req.headers.host)) {
      return refuse(socket, 403, `origin ${origin} is not allowed (PUBLIC_ORIGIN, ALLOWED_ORIGINS)`);
    }
    const session = await sessionFromTokens(deps.db, [url.searchParams.get('token'), cookieValue(req.headers.cookie, SESSION_COOKIE)]);
    if (!session) return refuse(socket, 401, 'a session token is required (POST /api/session, then ?token= or the session cookie)');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const log = deps.log.child({ conn: nextConnection++, session: session.id });
      deps.metrics.wsConnections.inc();
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      const address = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], deps.config.trustProxy);
      const conn = new Connection(ws, session, address, deps, log);
      const current = deps.models.current;
      if (current) conn.send({ type: 'model', version: current.id });
      log.debug('socket open');
    });
  }

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    onUpgrade(req, socket, head).catch((err) => {
      deps.log.error({ err }, 'upgrade failed');
      refuse(socket, 500, 'internal error');
    });
  });

  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();

  const stopModelEvents = deps.models.onChange((v) => endpoint.broadcast({ type: 'model', version: v.id }));

  const endpoint: WebSocketEndpoint = {
    broadcast(frame) {
      const text = JSON.stringify(frame);
      for (const ws of wss.clients) if (ws.readyState === ws.OPEN) ws.send(text);
    },
    close() {
      clearInterval(heartbeat);
      stopModelEvents();
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      wss.close();
    },
  };
  return endpoint;
}
