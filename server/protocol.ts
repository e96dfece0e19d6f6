/**
 * THE wire protocol of the chat server: WebSocket frames (client → server and server → client) and
 * the JSON bodies of the REST routes. docs/protocol.md describes it with examples.
 *
 * The first half is types only, so that the web client can `import type` them without pulling in
 * any runtime code. The second half holds the zod schemas that validate what clients send; each is
 * checked at compile time against its type.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------------
// Types (runtime-free)
// ---------------------------------------------------------------------------------------------------

/** Chosen by the client to match replies to requests; echoed on every frame about that request. */
export type RequestId = string | number;

/** Decoding options; all optional (server defaults), validated with the model's limits and the server's caps. */
export interface Decoding {
  strategy?: 'greedy' | 'beam_search' | 'sample';
  max_new_tokens?: number;
  beam_width?: number;
  length_penalty?: number;
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  seed?: number;
  stop?: string[];
}

/** Stable error codes (WebSocket `error` frames and REST error bodies). */
export type ErrorCode =
  | 'bad_request' // 400: invalid JSON, unknown frame type, bad field or option
  | 'unauthorized' // 401: no or unknown session token / admin token (REST)
  | 'forbidden' // 403: not this session's conversation or message
  | 'not_found' // 404
  | 'conflict' // 409: e.g. activating a rejected model version
  | 'not_generated' // 409: rating, regenerating or choosing a message the model did not write (client-sent history, a reply still running, failed or interrupted)
  | 'too_large' // 413: prompt over MAX_PROMPT_CHARS, body over MAX_FRAME_BYTES
  | 'busy' // 429: the engine's rows and queue are full
  | 'rate_limited' // 429: over MAX_INFLIGHT_PER_SESSION or RATE_LIMIT_PER_MINUTE
  | 'unavailable' // 503: no model loaded, shutting down, database unreachable
  | 'internal'; // 500

/** Why a reply ended: end of turn or a stop string, the token budget, or a cancel. */
export type WireFinishReason = 'stop' | 'length' | 'cancelled';

// Client → server ------------------------------------------------------------------------------------

/** A user message and a reply to it. No conversation_id: a new conversation. */
interface ChatFrame {
  type: 'chat';
  id: RequestId;
  conversation_id?: number;
  /** The message the user message answers. Omitted: the conversation's newest message; null: a new root. */
  parent_id?: number | null;
  content: string;
  decoding?: Decoding;
}

/** Another reply to the same user message as `message_id` (a new sibling of it). */
interface RegenerateFrame {
  type: 'regenerate';
  id: RequestId;
  message_id: number;
  decoding?: Decoding;
}

/** Stops a running request of this socket (its `done` says "cancelled"); unknown ids are ignored. */
interface CancelFrame {
  type: 'cancel';
  id: RequestId;
}

/** Thumbs up (1) or down (−1) on a reply; 0 removes the rating. Answered by `rated`. */
interface RateFrame {
  type: 'rate';
  id?: RequestId;
  message_id: number;
  value: 1 | -1 | 0;
  reason?: string;
}

/** One side of an A/B comparison: its own request id (frames, cancel) and decoding options. */
interface CompareSide {
  id: RequestId;
  decoding?: Decoding;
}

/** A/B: one user message, two replies (siblings) streamed as two requests `a.id` and `b.id`. */
interface CompareFrame {
  type: 'compare';
  conversation_id?: number;
  parent_id?: number | null;
  content: string;
  a: CompareSide;
  b: CompareSide;
}

export type Choice = 'a' | 'b' | 'tie' | 'both_bad';

/** The verdict on two replies to the same user message: a → pair (a over b), tie/both_bad → ratings. */
interface ChooseFrame {
  type: 'choose';
  id?: RequestId;
  a: number;
  b: number;
  choice: Choice;
}

export type ClientFrame = ChatFrame | RegenerateFrame | CancelFrame | RateFrame | CompareFrame | ChooseFrame;

// Server → client ------------------------------------------------------------------------------------

/** The reply is stored (empty) and generating; `parent_id` is the user message it answers. */
export interface StartFrame {
  type: 'start';
  id: RequestId;
  conversation_id: number;
  parent_id: number | null;
  message_id: number;
  model_version: number;
}

/** A piece of the reply (UTF-8 safe; for beam search only text that can no longer change). */
export interface DeltaFrame {
  type: 'delta';
  id: RequestId;
  text: string;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** The reply ended; `text` is the concatenation of the deltas (and what is stored). */
export interface DoneFrame {
  type: 'done';
  id: RequestId;
  message_id: number;
  text: string;
  finish_reason: WireFinishReason;
  usage: Usage;
  model_version: number;
  timings: { ttft_ms: number; total_ms: number };
}

export interface RatedFrame {
  type: 'rated';
  id?: RequestId;
  message_id: number;
  value: 1 | -1 | 0;
  /** The preference pairs this message's ratings now imply (created or kept). */
  pairs: number[];
}

export interface ChosenFrame {
  type: 'chosen';
  id?: RequestId;
  a: number;
  b: number;
  choice: Choice;
  pairs: number[];
}

export interface ErrorFrame {
  type: 'error';
  /** The request it concerns, when known. */
  id?: RequestId;
  code: ErrorCode;
  message: string;
}

/** The policy version serving new requests: sent on connect and whenever it changes. */
export interface ModelFrame {
  type: 'model';
  version: number;
}

export type ServerFrame = StartFrame | DeltaFrame | DoneFrame | RatedFrame | ChosenFrame | ErrorFrame | ModelFrame;

// REST bodies ----------------------------------------------------------------------------------------

export interface ApiErrorBody {
  /** `type` mirrors OpenAI's error bodies so that OpenAI clients show the message. */
  error: { code: ErrorCode; message: string; type: string };
}

/** POST /api/session */
export interface SessionResponse {
  token: string;
  session_id: number;
}

export interface ConversationSummary {
  id: number;
  title: string;
  created_at: string;
  updated_at: string;
}

/** One node of a conversation's message tree. */
export interface WireMessage {
  id: number;
  parent_id: number | null;
  role: 'system' | 'user' | 'assistant';
  content: string;
  created_at: string;
  /** Replies only (null while generating or for user messages). */
  model_version: number | null;
  /**
   * Null while generating and for user/system messages. `error`: generation failed; `interrupted`: the
   * server stopped (killed, crashed) before the reply ended; its text is what was stored, often empty.
   */
  finish_reason: WireFinishReason | 'error' | 'interrupted' | null;
  usage: Usage | null;
  timings: { ttft_ms: number; total_ms: number } | null;
  decoding: Decoding | null;
  /** This session's rating of the reply. */
  rating: 1 | -1 | null;
}

/** GET /api/conversations/:id — the whole tree, parents before children. */
export interface ConversationDetail extends ConversationSummary {
  messages: WireMessage[];
}

/** POST /api/messages/:id/rating */
interface RatingRequest {
  value: 1 | -1 | 0;
  reason?: string;
}

/** POST /api/comparisons */
interface ChoiceRequest {
  a: number;
  b: number;
  choice: Choice;
}

export interface ModelVersionInfo {
  id: number;
  kind: 'policy' | 'reward';
  parent_id: number | null;
  status: 'candidate' | 'active' | 'rejected' | 'retired';
  sha256: string;
  /** Absolute on the admin routes; on the public GET /api/models only the directory's name. */
  checkpoint_path: string;
  metrics: Record<string, unknown>;
  reasons: string[];
  created_at: string;
  activated_at: string | null;
  /** Whether this server's engine is serving it now. */
  serving: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Schemas of what clients send
// ---------------------------------------------------------------------------------------------------

const id = z.union([z.string().min(1).max(128), z.number().int().safe()], { error: 'id must be a string (1-128 chars) or an integer' });
const rowId = (name: string) => z.number({ error: `${name} must be a message/conversation id (integer)` }).int().positive();
/** Only the shape here; the options themselves are checked by parseDecodeOptions (model limits) and the server caps. */
const decoding = z.custom<Decoding>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { error: 'decoding must be an object' });
/**
 * Client text as the store can keep it. PostgreSQL refuses U+0000 in text and jsonb: refused here
 * (it used to surface as an internal error). Lone UTF-16 surrogates, which JSON can carry as `\udXXX`
 * escapes, become U+FFFD: what PostgreSQL stores for them anyway, and PGlite mis-encodes some
 * sequences of them into invalid UTF-8.
 */
export const storableText = (s: string) => !s.includes('\u0000');
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
export const hasLoneSurrogate = (s: string) => s.search(LONE_SURROGATE) !== -1;
export const wellFormed = (s: string) => s.replace(LONE_SURROGATE, '\ufffd');
const noNul = (name: string) => ({ error: `${name} must not contain U+0000 (NUL)` });
const content = z.string({ error: 'content must be a string' }).min(1, { error: 'content must not be empty' }).refine(storableText, noNul('content')).transform(wellFormed);
const choice = z.enum(['a', 'b', 'tie', 'both_bad'], { error: "choice must be 'a', 'b', 'tie' or 'both_bad'" });
const ratingValue = z.union([z.literal(1), z.literal(-1), z.literal(0)], { error: 'value must be 1, -1 or 0' });
const reason = z.string().max(1000, { error: 'reason must be at most 1000 characters' }).refine(storableText, noNul('reason')).transform(wellFormed);

const side = z.strictObject({ id, decoding: decoding.optional() });

export const ClientFrameSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('chat'), id, conversation_id: rowId('conversation_id').optional(), parent_id: rowId('parent_id').nullable().optional(), content, decoding: decoding.optional() }),
  z.strictObject({ type: z.literal('regenerate'), id, message_id: rowId('message_id'), decoding: decoding.optional() }),
  z.strictObject({ type: z.literal('cancel'), id }),
  z.strictObject({ type: z.literal('rate'), id: id.optional(), message_id: rowId('message_id'), value: ratingValue, reason: reason.optional() }),
  z.strictObject({ type: z.literal('compare'), conversation_id: rowId('conversation_id').optional(), parent_id: rowId('parent_id').nullable().optional(), content, a: side, b: side }),
  z.strictObject({ type: z.literal('choose'), id: id.optional(), a: rowId('a'), b: rowId('b'), choice }),
]);

export const FRAME_TYPES = ['chat', 'regenerate', 'cancel', 'rate', 'compare', 'choose'] as const;

export const RatingRequestSchema = z.strictObject({ value: ratingValue, reason: reason.optional() });
export const ChoiceRequestSchema = z.strictObject({ a: rowId('a'), b: rowId('b'), choice });
export const RenameRequestSchema = z.strictObject({ title: z.string().max(200, { error: 'title must be at most 200 characters' }).refine(storableText, noNul('title')).transform(wellFormed) });

// Compile-time checks that the schemas accept exactly the documented types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [
  Same<z.output<typeof ClientFrameSchema>, ClientFrame>,
  Same<z.output<typeof RatingRequestSchema>, RatingRequest>,
  Same<z.output<typeof ChoiceRequestSchema>, ChoiceRequest>,
] = [true, true, true];
void checks;
