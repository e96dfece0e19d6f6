/** What a ChatClient is made with and what it tells its listeners. */
import type { Decoding, SessionResponse } from '../../server/protocol.ts';
import type { ChatError } from './errors.ts';
import type { FetchFn } from './http.ts';

/** What the client needs of a WebSocket: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // Handlers are typed by the client's own functions (events: { data } for message, { code, reason } for close).
  onopen: ((ev: never) => unknown) | null;
  onmessage: ((ev: never) => unknown) | null;
  onclose: ((ev: never) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ChatClientOptions {
  /** The server, e.g. `http://localhost:8080`. In a browser: the page's origin by default. */
  url?: string;
  /** A session token from `POST /api/session`; without one a new anonymous session is made. */
  token?: string;
  /** The WebSocket class: the browser's by default; in Node 20 pass the `ws` package's default export. */
  WebSocket?: WebSocketConstructor;
  fetch?: FetchFn;
  /** Reconnect delays (exponential backoff with jitter); `false`: no automatic reconnect. */
  reconnect?: false | { minDelayMs?: number; maxDelayMs?: number };
}

export type ConnectionStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ChatClientEvents {
  status: ConnectionStatus;
  /** The policy version serving new requests. */
  model: number;
  /** A new session was issued (the previous token was no longer valid). */
  session: SessionResponse;
  /** A server error not tied to any request of this client, or an unreadable frame. */
  error: ChatError;
}

export interface GenerateOptions {
  decoding?: Decoding;
}

export interface ChatOptions extends GenerateOptions {
  /** Omitted: a new conversation. */
  conversationId?: number;
  /** The message the new user message answers; omitted: the conversation's newest; null: a new root. */
  parentId?: number | null;
}
