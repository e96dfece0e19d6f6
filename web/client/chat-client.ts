/**
 * A typed client of the chat server's WebSocket protocol (docs/protocol.md), for browsers and Node.
 *
 * - One socket, many requests in flight; each generation is a ReplyStream (async iterator of deltas).
 * - The session: a given token, or a new anonymous one from `POST /api/session`.
 * - Automatic reconnect with exponential backoff. Requests made while disconnected wait in an outbox
 *   and go out on reconnect; generations running when the socket drops end with a `disconnected`
 *   error (the server cancels them when the socket closes).
 * - `status`, `model` (the served version, on connect and on every change), `session` and `error`
 *   (errors not tied to a request) events.
 */
import type {
  Choice,
  ChosenFrame,
  ClientFrame,
  ConversationDetail,
  ConversationSummary,
  Decoding,
  ModelVersionInfo,
  RatedFrame,
  RequestId,
  ServerFrame,
} from '../../server/protocol.ts';
import { ChatError } from './errors.ts';
import type { ChatClientEvents, ChatClientOptions, ChatOptions, ConnectionStatus, GenerateOptions, WebSocketConstructor, WebSocketLike } from './client-options.ts';
import { ReplyStream } from './reply-stream.ts';
import { Outbox, requestKey, requestKeys } from './outbox.ts';
import { ClientSession } from './session.ts';

interface PendingCall {
  resolve(frame: RatedFrame | ChosenFrame): void;
  reject(err: ChatError): void;
}

export class ChatClient {
  readonly url: string;
  private readonly WS: WebSocketConstructor;
  private readonly session: ClientSession;
  private readonly delays: { min: number; max: number } | null;

  private socket: WebSocketLike | null = null;
  private statusValue: ConnectionStatus = 'idle';
  private attempt = 0;
  private everOpened = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private lastError: ChatError | null = null;
  private nextId = 1;
  private readonly outbox = new Outbox();
  /** Request ids sent on the current socket (what a drop interrupts). */
  private readonly sent = new Set<string>();
  private readonly streams = new Map<string, ReplyStream>();
  private readonly calls = new Map<string, PendingCall>();
  private readonly listeners: { [K in keyof ChatClientEvents]: Set<(v: ChatClientEvents[K]) => void> } = {
    status: new Set(),
    model: new Set(),
    session: new Set(),
    error: new Set(),
  };

  /** The served model version, once the server has said (on connect). */
  modelVersion: number | null = null;

  constructor(opts: ChatClientOptions = {}) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const url = opts.url ?? origin;
    if (!url) throw new TypeError('ChatClient: `url` is required outside a browser (e.g. http://localhost:8080)');
    this.url = url.replace(/\/+$/, '');
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("ChatClient: no global WebSocket here; pass one, e.g. `import WebSocket from 'ws'` and { WebSocket }");
    this.WS = WS;
    this.session = new ClientSession(this.url, opts.fetch ?? ((input, init) => globalThis.fetch(input, init)), opts.token, (session) => this.emit('session', session));
    this.delays = opts.reconnect === false ? null : { min: opts.reconnect?.minDelayMs ?? 500, max: opts.reconnect?.maxDelayMs ?? 10_000 };
  }

  /** A client whose socket is open (rejects if the first connection does not open within `timeoutMs`). */
  static async connect(opts: ChatClientOptions & { timeoutMs?: number } = {}): Promise<ChatClient> {
    const client = new ChatClient(opts);
    client.start();
    try {
      await client.ready(opts.timeoutMs ?? 10_000);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** The session token in use (undefined until the first connection attempt has one). */
  get sessionToken(): string | undefined {
    return this.session.token;
  }

  on<K extends keyof ChatClientEvents>(type: K, listener: (value: ChatClientEvents[K]) => void): () => void {
    this.listeners[type].add(listener);
    return () => this.listeners[type].delete(listener);
  }

  /** Starts connecting (and keeps reconnecting) in the background; see `status` events. */
  start(): void {
    if (this.statusValue === 'idle') void this.openSocket();
  }

  /** Resolves when the socket is open. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.statusValue === 'open') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        const why = this.lastError ? `: ${this.lastError.message}` : '';
        reject(new ChatError('network', `could not connect to ${this.url} within ${timeoutMs} ms${why}`));
      }, timeoutMs);
      const off = this.on('status', (s) => {
        if (s === 'open' || s === 'closed') {
          clearTimeout(timer);
          off();
          if (s === 'open') resolve();
          else reject(new ChatError('network', 'the client was closed'));
        }
      });
    });
  }

  /** Skips the current backoff wait (e.g. when the browser comes back online). */
  reconnectNow(): void {
    if (this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    void this.openSocket();
  }

  /** Closes the socket for good; pending requests fail with `disconnected`. */
  close(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.failInFlight(new ChatError('disconnected', 'the client was closed'), true);
    this.setStatus('closed');
    socket?.close(1000, 'client closed');
  }

  // Requests ---------------------------------------------------------------------------------------

  /** A user message and the streamed reply to it. */
  chat(content: string, { conversationId, parentId, decoding }: ChatOptions = {}): ReplyStream {
    const stream = this.newStream();
    this.enqueue({
      type: 'chat',
      id: stream.id,
      content,
      ...(conversationId !== undefined && { conversation_id: conversationId }),
      ...(parentId !== undefined && { parent_id: parentId }),
      ...(decoding && { decoding }),
    });
    return stream;
  }

  /** Another reply to the user message that reply `messageId` answers (a new sibling). */
  regenerate(messageId: number, { decoding }: GenerateOptions = {}): ReplyStream {
    const stream = this.newStream();
    this.enqueue({ type: 'regenerate', id: stream.id, message_id: messageId, ...(decoding && { decoding }) });
    return stream;
  }

  /** A/B: one user message, two replies (siblings) streamed side by side; then `choose`. */
  compare(
    content: string,
    { a, b, conversationId, parentId }: { a?: Decoding; b?: Decoding; conversationId?: number; parentId?: number | null } = {},
  ): { a: ReplyStream; b: ReplyStream } {
    const sa = this.newStream();
    const sb = this.newStream();
    this.enqueue({
      type: 'compare',
      content,
      ...(conversationId !== undefined && { conversation_id: conversationId }),
      ...(parentId !== undefined && { parent_id: parentId }),
      a: { id: sa.id, ...(a && { decoding: a }) },
      b: { id: sb.id, ...(b && { decoding: b }) },
    });
    return { a: sa, b: sb };
  }

  /** Stops a running generation (its `done` says "cancelled"). */
  cancel(id: RequestId): void {
    const k = requestKey(id);
    const queued = this.outbox.take(k);
    if (queued) {
      // Never sent: nothing runs on the server. (A compare's other side is dropped with it.)
      for (const other of queued) this.finishWithError(other, new ChatError('disconnected', 'cancelled before it reached the server'));
      return;
    }
    if (this.streams.has(k)) this.send({ type: 'cancel', id });
  }

  /** Thumbs up (1), down (−1) or no rating (0) on a reply; resolves with the pairs it implies. */
  rate(messageId: number, value: 1 | -1 | 0, reason?: string): Promise<RatedFrame> {
    const id = this.newId();
    return this.call<RatedFrame>(id, { type: 'rate', id, message_id: messageId, value, ...(reason && { reason }) });
  }

  /** The verdict on two replies to the same user message (from `compare`, or any two siblings). */
  choose(a: number, b: number, choice: Choice): Promise<ChosenFrame> {
    const id = this.newId();
    return this.call<ChosenFrame>(id, { type: 'choose', id, a, b, choice });
  }

  // REST -------------------------------------------------------------------------------------------

  async listConversations(): Promise<ConversationSummary[]> {
    return (await this.session.rest<{ conversations: ConversationSummary[] }>('/api/conversations')).conversations;
  }

  getConversation(id: number): Promise<ConversationDetail> {
    return this.session.rest<ConversationDetail>(`/api/conversations/${id}`);
  }

  renameConversation(id: number, title: string): Promise<ConversationSummary> {
    return this.session.rest<ConversationSummary>(`/api/conversations/${id}`, { method: 'PATCH', body: { title } });
  }

  async deleteConversation(id: number): Promise<void> {
    await this.session.rest<void>(`/api/conversations/${id}`, { method: 'DELETE' });
  }

  listModels(): Promise<{ serving: number | null; versions: ModelVersionInfo[] }> {
    return this.session.rest('/api/models');
  }

  private async openSocket(): Promise<void> {
    this.retryTimer = null;
    this.setStatus(this.everOpened ? 'reconnecting' : 'connecting');
    try {
      // After a failed attempt, check the token too: a server with a fresh database forgets sessions.
      await this.session.ensure(this.attempt > 0);
    } catch (err) {
      this.lastError = err instanceof ChatError ? err : new ChatError('network', String(err));
      return this.scheduleRetry();
    }
    if (this.statusValue === 'closed') return;
    const wsUrl = `${this.url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(this.session.token!)}`;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(wsUrl);
    } catch (err) {
      this.lastError = new ChatError('network', `cannot open ${wsUrl}: ${String(err)}`);
      return this.scheduleRetry();
    }
    this.socket = ws;
    ws.onopen = () => {
      if (this.socket !== ws) return;
      this.attempt = 0;
      this.everOpened = true;
      this.lastError = null;
      this.setStatus('open');
      this.flush();
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (this.socket === ws) this.onFrame(ev.data);
    };
    ws.onerror = () => {};
    ws.onclose = (ev: { code: number; reason: string }) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.lastError = new ChatError('network', `the connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
      this.failInFlight(new ChatError('disconnected', 'the connection to the server was lost'), false);
      this.scheduleRetry();
    };
  }

  private scheduleRetry(): void {
    if (this.statusValue === 'closed') return;
    if (!this.delays) {
      this.failInFlight(new ChatError('disconnected', 'the connection to the server was lost'), true);
      this.setStatus('closed');
      return;
    }
    this.setStatus(this.everOpened ? 'reconnecting' : 'connecting');
    const base = Math.min(this.delays.max, this.delays.min * 2 ** this.attempt);
    this.attempt++;
    this.retryTimer = setTimeout(() => void this.openSocket(), base * (0.75 + Math.random() * 0.5));
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.statusValue) return;
    this.statusValue = status;
    this.emit('status', status);
  }

  private emit<K extends keyof ChatClientEvents>(type: K, value: ChatClientEvents[K]): void {
    for (const listener of [...this.listeners[type]]) listener(value);
  }

  private onFrame(data: unknown): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : String(data)) as ServerFrame;
    } catch {
      this.emit('error', new ChatError('internal', 'the server sent a frame that is not JSON'));
      return;
    }
    switch (frame.type) {
      case 'model':
        this.modelVersion = frame.version;
        this.emit('model', frame.version);
        return;
      case 'start':
        this.streams.get(requestKey(frame.id))?.handleStart(frame);
        return;
      case 'delta':
        this.streams.get(requestKey(frame.id))?.handleDelta(frame.text);
        return;
      case 'done': {
        const k = requestKey(frame.id);
        this.streams.get(k)?.handleDone(frame);
        this.streams.delete(k);
        this.sent.delete(k);
        return;
      }
      case 'rated':
      case 'chosen': {
        if (frame.id === undefined) return;
        const k = requestKey(frame.id);
        this.calls.get(k)?.resolve(frame);
        this.calls.delete(k);
        this.sent.delete(k);
        return;
      }
      case 'error': {
        const err = new ChatError(frame.code, frame.message);
        if (frame.id === undefined || !this.finishWithError(requestKey(frame.id), err)) this.emit('error', err);
        return;
      }
    }
  }

  /** Ends the request `k` with an error; false when no such request is waiting. */
  private finishWithError(k: string, err: ChatError): boolean {
    const stream = this.streams.get(k);
    const call = this.calls.get(k);
    this.streams.delete(k);
    this.calls.delete(k);
    this.sent.delete(k);
    stream?.handleError(err);
    call?.reject(err);
    return stream !== undefined || call !== undefined;
  }

  /** Fails what the dropped socket carried; with `all`, also what waits in the outbox. */
  private failInFlight(err: ChatError, all: boolean): void {
    for (const k of [...this.sent]) this.finishWithError(k, err);
    if (all) for (const item of this.outbox.drain()) for (const k of item.keys) this.finishWithError(k, err);
  }

  private newId(): string {
    return `r${this.nextId++}`;
  }

  private newStream(): ReplyStream {
    const stream = new ReplyStream(this.newId(), (id) => this.cancel(id));
    this.streams.set(requestKey(stream.id), stream);
    return stream;
  }

  private call<T extends RatedFrame | ChosenFrame>(id: string, frame: ClientFrame): Promise<T> {
    const promise = new Promise<T>((resolve, reject) => this.calls.set(requestKey(id), { resolve: resolve as PendingCall['resolve'], reject }));
    this.enqueue(frame);
    return promise;
  }

  private enqueue(frame: ClientFrame): void {
    if (this.statusValue === 'closed') {
      const err = new ChatError('disconnected', 'the client was closed');
      for (const k of requestKeys(frame)) this.finishWithError(k, err);
      return;
    }
    this.outbox.push(frame);
    this.flush();
  }

  private flush(): void {
    const ws = this.socket;
    if (!ws || this.statusValue !== 'open') return;
    for (const item of this.outbox.drain()) {
      for (const k of item.keys) this.sent.add(k);
      ws.send(JSON.stringify(item.frame));
    }
  }

  /** Control frames (cancel) are only useful on the socket that carries the request. */
  private send(frame: ClientFrame): void {
    if (this.socket && this.statusValue === 'open') this.socket.send(JSON.stringify(frame));
  }
}
