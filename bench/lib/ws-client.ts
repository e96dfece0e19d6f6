/**
 * The chat client of the benchmarks (its session and socket opening is shared with the tests'
 * recording client, tests/helpers/server-harness.ts): one session and one WebSocket, requests matched to their frames by
 * id, and for each request the arrival time of every frame (performance.now(), ms). A request never
 * rejects: a refusal, a lost socket or a timeout is recorded in `error` with a reason code (the
 * server's error code, or socket_closed / timeout), so that load figures count failures by reason.
 */
import WebSocket from 'ws';
import type { ClientFrame, Decoding, ServerFrame } from '../../server/protocol.ts';

export interface RequestResult {
  id: string;
  kind: 'chat' | 'regenerate';
  sentAt: number;
  /** When the `start` frame came (the reply row exists and the engine took the request). */
  startAt: number | null;
  /** Arrival of each delta frame; a delta holds the text of one or more tokens. */
  deltaTimes: number[];
  endAt: number;
  /** Completion tokens (end of turn excluded) from the `done` frame; 0 on error. */
  tokens: number;
  messageId: number | null;
  conversationId: number | null;
  modelVersion: number | null;
  finishReason: string | null;
  error: { code: string; message: string } | null;
}

export const ttftMs = (r: RequestResult): number | null => (r.deltaTimes.length > 0 ? r.deltaTimes[0] - r.sentAt : null);
export const totalMs = (r: RequestResult): number => r.endAt - r.sentAt;
/** Gaps between consecutive deltas of one reply, as [from, to] arrival times. */
export const deltaGaps = (r: RequestResult): [number, number][] => r.deltaTimes.slice(1).map((t, i) => [r.deltaTimes[i], t]);

interface Pending {
  result: RequestResult;
  timer: NodeJS.Timeout;
  resolve: (r: RequestResult) => void;
}

/** A new session (POST /api/session); its bearer token. Throws naming the status when refused. */
export async function newSession(url: string): Promise<string> {
  const res = await fetch(`${url}/api/session`, { method: 'POST' });
  if (res.status !== 201) throw new Error(`POST /api/session answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return ((await res.json()) as { token: string }).token;
}

/**
 * The chat socket of a session (`ws(s)://…/ws?token=…`), open, handed to `attach` in the open event
 * itself, so that a listener it adds sees the frame the server sends first (`model`). Rejects with
 * `unexpected response <status>` when the upgrade is refused.
 */
export function openChatSocket<T>(wsUrl: string, attach: (ws: WebSocket) => T, { token, headers = {} }: { token?: string; headers?: Record<string, string> } = {}): Promise<T> {
  const ws = new WebSocket(token ? `${wsUrl}?token=${encodeURIComponent(token)}` : wsUrl, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(attach(ws)));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The WebSocket address of a server's http(s) URL. */
export const chatSocketUrl = (url: string): string => `${url.replace(/^http/, 'ws')}/ws`;

export class BenchClient {
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private closed = false;
  /** The policy version the server announced last (`model` frames). */
  modelVersion: number | null = null;

  private constructor(
    readonly url: string,
    readonly token: string,
    private readonly ws: WebSocket,
    private readonly timeoutMs: number,
    private readonly name: string,
  ) {
    ws.on('message', (data) => this.onFrame(JSON.parse(String(data)) as ServerFrame));
    ws.on('close', () => {
      this.closed = true;
      for (const id of [...this.pending.keys()]) this.finish(id, { code: 'socket_closed', message: 'the WebSocket closed' });
    });
    ws.on('error', () => {});
  }

  /** A new session and its socket. */
  static async connect(url: string, { timeoutMs = 120_000, name = 'c' }: { timeoutMs?: number; name?: string } = {}): Promise<BenchClient> {
    const token = await newSession(url);
    return openChatSocket(chatSocketUrl(url), (ws) => new BenchClient(url, token, ws, timeoutMs, name), { token });
  }

  chat(content: string, decoding: Decoding, conversationId?: number): Promise<RequestResult> {
    const id = this.newId();
    return this.send({ type: 'chat', id, content, decoding, ...(conversationId !== undefined && { conversation_id: conversationId }) }, id, 'chat');
  }

  /** Another reply to the user message that reply `messageId` answers. */
  regenerate(messageId: number, decoding: Decoding): Promise<RequestResult> {
    const id = this.newId();
    return this.send({ type: 'regenerate', id, message_id: messageId, decoding }, id, 'regenerate');
  }

  /** Thumbs on a reply through REST (POST /api/messages/:id/rating); the status and the time it took. */
  async rate(messageId: number, value: 1 | -1 | 0): Promise<{ status: number; ms: number; code: string | null }> {
    const t0 = performance.now();
    try {
      const res = await fetch(`${this.url}/api/messages/${messageId}/rating`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
      return { status: res.status, ms: performance.now() - t0, code: res.ok ? null : (body?.error?.code ?? `http_${res.status}`) };
    } catch (err) {
      const timeout = (err as Error).name === 'TimeoutError';
      return { status: 0, ms: performance.now() - t0, code: timeout ? 'timeout' : 'network' };
    }
  }

  get requestsInFlight(): number {
    return this.pending.size;
  }

  close(): void {
    this.ws.close();
  }

  private newId(): string {
    return `${this.name}-${++this.next}`;
  }

  private send(frame: ClientFrame, id: string, kind: RequestResult['kind']): Promise<RequestResult> {
    const result: RequestResult = {
      id,
      kind,
      sentAt: performance.now(),
      startAt: null,
      deltaTimes: [],
      endAt: NaN,
      tokens: 0,
      messageId: null,
      conversationId: null,
      modelVersion: null,
      finishReason: null,
      error: null,
    };
    return new Promise((resolve) => {
      if (this.closed) {
        result.endAt = performance.now();
        result.error = { code: 'socket_closed', message: 'the WebSocket is closed' };
        resolve(result);
        return;
      }
      const timer = setTimeout(() => {
        this.ws.send(JSON.stringify({ type: 'cancel', id }));
        this.finish(id, { code: 'timeout', message: `no done frame within ${this.timeoutMs} ms` });
      }, this.timeoutMs);
      this.pending.set(id, { result, timer, resolve });
      this.ws.send(JSON.stringify(frame));
    });
  }

  private onFrame(f: ServerFrame): void {
    const now = performance.now();
    if (f.type === 'model') {
      this.modelVersion = f.version;
      return;
    }
    if (!('id' in f) || f.id === undefined) return;
    const p = this.pending.get(String(f.id));
    if (!p) return;
    const r = p.result;
    switch (f.type) {
      case 'start':
        r.startAt = now;
        r.messageId = f.message_id;
        r.conversationId = f.conversation_id;
        r.modelVersion = f.model_version;
        return;
      case 'delta':
        r.deltaTimes.push(now);
        return;
      case 'done':
        r.tokens = f.usage.completion_tokens;
        r.messageId = f.message_id;
        r.modelVersion = f.model_version;
        r.finishReason = f.finish_reason;
        this.finish(r.id);
        return;
      case 'error':
        this.finish(r.id, { code: f.code, message: f.message });
        return;
    }
  }

  private finish(id: string, error?: { code: string; message: string }): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.result.endAt = performance.now();
    if (error) p.result.error = error;
    p.resolve(p.result);
  }
}

/** Opens `n` clients in parallel (each its own session). */
export async function connectClients(url: string, n: number, opts: { timeoutMs?: number; prefix?: string } = {}): Promise<BenchClient[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => BenchClient.connect(url, { timeoutMs: opts.timeoutMs, name: `${opts.prefix ?? 'c'}${i}` })));
}

export function closeClients(clients: BenchClient[]): void {
  for (const c of clients) c.close();
}

/** Short prompts of everyday chat. */
export const PROMPTS = [
  'how are you ?',
  'what is your name ?',
  'tell me a story .',
  'where do you live ?',
  'what happened to the city ?',
  'do you like music ?',
  'why did you come here ?',
  'what do you want ?',
];
