/**
 * What the server suites share (the server start, session and socket opening are the benchmarks',
 * bench/lib): the databases to run against (in-memory PGlite always; a scratch
 * database on the PostgreSQL server of DATABASE_URL when it is set, created for the run and dropped
 * after), a real server on an ephemeral loopback port serving a tiny trained model, and a WebSocket
 * test client that records every frame.
 */
import WebSocket from 'ws';
import { openMemoryDatabase, type DatabaseHandle } from '../../db/index.ts';
import type { ClientFrame, DoneFrame, ErrorFrame, RequestId, ServerFrame, StartFrame } from '../../server/protocol.ts';
import { startInProcessServer, type InProcessServer } from '../../bench/lib/local-server.ts';
import { chatSocketUrl, newSession, openChatSocket } from '../../bench/lib/ws-client.ts';
import { trainedTinyCheckpoint } from './tiny-model.ts';
import { openScratchDatabase } from './scratch-database.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

interface DatabaseTarget {
  name: string;
  open(): Promise<DatabaseHandle>;
}

export function databaseTargets(): DatabaseTarget[] {
  const targets: DatabaseTarget[] = [{ name: 'PGlite', open: openMemoryDatabase }];
  const url = process.env.DATABASE_URL;
  if (url) targets.push({ name: 'PostgreSQL', open: () => openScratchDatabase(url, 'test_server') });
  return targets;
}


/** A tiny model trained for a few steps (peaked like a real one): its checkpoint in the test cache, read-only. */
export function tinyCheckpoint(): Promise<string> {
  return trainedTinyCheckpoint();
}

export type TestServer = InProcessServer & { wsUrl: string };

/** A server on 127.0.0.1:0 over `target`'s database, serving the tiny model. */
export async function startTestServer(target: DatabaseTarget, env: Record<string, string> = {}): Promise<TestServer> {
  const checkpoint = await tinyCheckpoint();
  const started = await startInProcessServer({
    database: await target.open(),
    env: {
      CHECKPOINT: checkpoint,
      ADMIN_TOKEN,
      LOG_LEVEL: 'silent',
      RATE_LIMIT_PER_MINUTE: '10000',
      // Every test client comes from 127.0.0.1: per-address limits are tested where they are the point.
      RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '100000',
      MAX_INFLIGHT_PER_ADDRESS: '10000',
      FEEDBACK_PER_MINUTE: '10000',
      FEEDBACK_PER_ADDRESS_PER_MINUTE: '100000',
      SESSIONS_PER_ADDRESS_PER_MINUTE: '100000',
      TFJS_BACKEND: process.env.TFJS_BACKEND ?? '',
      // Suites that exercise the background trainer turn it on themselves.
      TRAINER: 'off',
      ...env,
    },
  });
  return { ...started, wsUrl: chatSocketUrl(started.url) };
}

export { newSession };

interface Exchange {
  start?: StartFrame;
  deltas: string[];
  done?: DoneFrame;
  error?: ErrorFrame;
}

/** A WebSocket client that records every frame and waits for frames matching a predicate. */
export class TestSocket {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      for (const l of this.listeners) l();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  /** Opens `/ws`; rejects with `unexpected response <status>` when the upgrade is refused. */
  static open(wsUrl: string, options: { token?: string; headers?: Record<string, string> } = {}): Promise<TestSocket> {
    return openChatSocket(wsUrl, (ws) => new TestSocket(ws), options);
  }

  send(frame: ClientFrame | string | Buffer | Record<string, unknown>): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** The first recorded frame (from `from` on) matching `pred`, now or when it arrives. */
  waitFor<F extends ServerFrame = ServerFrame>(pred: (f: ServerFrame) => boolean, { from = 0, timeoutMs = 20_000 } = {}): Promise<F> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.slice(from).find(pred);
        if (found) {
          cleanup();
          resolve(found as F);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(from).slice(-5))}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Everything about request `id` once it has ended (done or error). */
  async exchange(id: RequestId): Promise<Exchange> {
    const mine = (f: ServerFrame) => 'id' in f && f.id === id;
    await this.waitFor((f) => mine(f) && (f.type === 'done' || f.type === 'error'));
    const frames = this.frames.filter(mine);
    return {
      start: frames.find((f): f is StartFrame => f.type === 'start'),
      deltas: frames.flatMap((f) => (f.type === 'delta' ? [f.text] : [])),
      done: frames.find((f): f is DoneFrame => f.type === 'done'),
      error: frames.find((f): f is ErrorFrame => f.type === 'error'),
    };
  }

  /** Sends a request frame and waits for its end. */
  async request(frame: ClientFrame & { id: RequestId }): Promise<Exchange> {
    this.send(frame);
    return this.exchange(frame.id);
  }

  close(): void {
    this.ws.close();
  }
}

/** Polls `fn` until it returns a truthy value (or fails after `timeoutMs`). */
export async function eventually<T>(fn: () => Promise<T> | T, { timeoutMs = 10_000, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
