/**
 * One WebSocket of one session: parses and validates frames (a bad frame gets an `error` frame and
 * the socket stays open), dispatches them, and keeps the abort controllers of its running requests
 * keyed by request id, so that `cancel` stops one and a closed socket stops all at once.
 */
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { Session } from '../../db/index.ts';
import type { ServerDeps } from '../deps.ts';
import { ApiError, toApiError } from '../errors.ts';
import { ClientFrameSchema, FRAME_TYPES, type ClientFrame, type RequestId, type ServerFrame } from '../protocol.ts';
import { describeIssue } from '../validation.ts';
import { handleFrame } from './handlers.ts';

const key = (id: RequestId) => JSON.stringify(id);

export class Connection {
  private readonly running = new Map<string, AbortController>();
  private closed = false;

  constructor(
    readonly socket: WebSocket,
    readonly session: Session,
    /** The client's address (client-address.ts), for the per-address limits. */
    readonly address: string,
    readonly deps: ServerDeps,
    readonly log: Logger,
  ) {
    socket.on('message', (data, isBinary) => void this.onMessage(data, isBinary));
    socket.on('close', () => this.onClose());
    socket.on('error', (err) => log.debug({ err }, 'socket error'));
  }

  send(frame: ServerFrame): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    // A client that does not read would make the server buffer its frames without bound.
    const limit = this.deps.config.limits.maxSocketBufferBytes;
    if (this.socket.bufferedAmount > limit) return this.overflow(limit);
    this.socket.send(JSON.stringify(frame));
  }

  /** Closes a socket whose client stopped reading: 1008, its generations cancelled at once. */
  private overflow(limit: number): void {
    this.log.warn({ buffered: this.socket.bufferedAmount, limit }, 'closing a socket whose client does not read its frames');
    this.deps.metrics.errors.inc({ code: 'slow_consumer' });
    this.onClose();
    this.socket.close(1008, `the client did not read its frames: over ${limit} bytes unsent (WS_MAX_BUFFERED_BYTES)`);
    // The close frame waits behind the unread data: do not wait for the handshake.
    setTimeout(() => this.socket.terminate(), 1000).unref();
  }

  sendError(err: unknown, id?: RequestId): void {
    const e = toApiError(err);
    if (e.code === 'internal') this.log.error({ err, id }, 'request failed');
    this.deps.metrics.errors.inc({ code: e.code });
    this.send({ type: 'error', ...(id !== undefined && { id }), code: e.code, message: e.message });
  }

  /** Registers a running request; throws bad_request when the id is already running on this socket. */
  begin(id: RequestId): AbortController {
    if (this.running.has(key(id))) throw new ApiError('bad_request', `request ${JSON.stringify(id)} is already running on this socket`);
    const controller = new AbortController();
    if (this.closed) controller.abort();
    this.running.set(key(id), controller);
    return controller;
  }

  end(id: RequestId, controller: AbortController): void {
    if (this.running.get(key(id)) === controller) this.running.delete(key(id));
  }

  cancel(id: RequestId): void {
    this.running.get(key(id))?.abort();
  }

  private async onMessage(data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) return this.sendError(new ApiError('bad_request', 'binary frames are not supported; send JSON text frames'));
    let json: unknown;
    try {
      json = JSON.parse(data.toString());
    } catch {
      return this.sendError(new ApiError('bad_request', 'the frame is not valid JSON'));
    }
    const parsed = ClientFrameSchema.safeParse(json);
    if (!parsed.success) {
      const error = new ApiError('bad_request', frameProblem(json, parsed.error));
      const ids = idsOf(json);
      if (ids.length === 0) this.sendError(error);
      for (const id of ids) this.sendError(error, id);
      return;
    }
    const frame: ClientFrame = parsed.data;
    try {
      await handleFrame(this, frame);
    } catch (err) {
      // Errors of requests with ids are reported by their handlers; this is for anything else.
      this.sendError(err, 'id' in frame ? frame.id : undefined);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
    this.deps.metrics.wsConnections.dec();
  }
}

function frameProblem(json: unknown, error: import('zod').ZodError): string {
  const type = typeof json === 'object' && json !== null ? (json as { type?: unknown }).type : undefined;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'a frame must be a JSON object with a "type"';
  if (!FRAME_TYPES.includes(type as (typeof FRAME_TYPES)[number])) {
    return `unknown frame type ${JSON.stringify(type) ?? 'undefined'}; expected one of ${FRAME_TYPES.join(', ')}`;
  }
  return `${String(type)}: ${describeIssue(error)}`;
}

/** A bad frame's request ids (a compare has two), when readable, so that each waiting request hears of it. */
function idsOf(json: unknown): RequestId[] {
  if (typeof json !== 'object' || json === null) return [];
  const frame = json as { type?: unknown; id?: unknown; a?: { id?: unknown }; b?: { id?: unknown } };
  const candidates = frame.type === 'compare' ? [frame.a?.id, frame.b?.id] : [frame.id];
  return candidates.filter((id): id is RequestId => (typeof id === 'string' && id.length > 0 && id.length <= 128) || (typeof id === 'number' && Number.isSafeInteger(id)));
}
