// Row types of the feedback store, one interface per table, mirroring migrations/.
//
// Conventions:
// - Column names are snake_case, as in SQL (no CamelCasePlugin); rows are returned as stored.
// - Ids are `bigint generated always as identity`; both drivers are configured (connect.ts) to parse
//   int8 as a JS number (safe up to 2^53, far beyond what this service will reach).
// - JSONB columns read as parsed values and are written as JSON text: the repositories call `toJson()`
//   (util.ts). The `string` insert type makes a forgotten stringify a compile error — `pg` would otherwise
//   send a JS array as a Postgres array literal.
import type { ColumnType, Generated, Selectable } from 'kysely';

/** A nullable JSONB column (optional on insert). */
type NullableJsonb<T> = ColumnType<T | null, string | null | undefined, string | null>;
/** A JSONB column with a database default (optional on insert). */
type DefaultedJsonb<T> = ColumnType<T, string | undefined, string>;

/** A parsed JSON object (decoding options, metrics, config). */
export type JsonObject = Record<string, unknown>;

/** One turn of a chat transcript, as exported for training and stored for imported pairs. */
export interface ChatTurn {
  role: MessageRole;
  content: string;
}

export type MessageRole = 'system' | 'user' | 'assistant';
/**
 * `generated`: a reply the model wrote (its row is created by the server when generation starts);
 * `client`: anything a client sent, including the assistant turns of a /v1 request's history. Only
 * generated replies may be rated, regenerated, chosen or paired.
 */
export type MessageOrigin = 'generated' | 'client';
/**
 * `interrupted`: the process generating the reply died before storing its end (marked at the next
 * start-up; see server/chat/interrupted.ts).
 */
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error' | 'interrupted';
export type RatingValue = -1 | 1;
/** Where a preference pair came from: sibling replies, an A/B comparison, an imported file, the corpus. */
export const PAIR_SOURCES = ['siblings', 'compare', 'import', 'bootstrap'] as const;
export type PairSource = (typeof PAIR_SOURCES)[number];
export type ModelKind = 'policy' | 'reward';
export type ModelStatus = 'candidate' | 'active' | 'rejected' | 'retired';
type TrainingRunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Timings of one generated reply, in milliseconds. */
export interface MessageTimings {
  ttft_ms: number;
  total_ms: number;
  [extra: string]: unknown;
}

/** Anonymous sessions. Only the sha256 (hex) of the bearer token is stored. */
interface SessionsTable {
  id: Generated<number>;
  token_hash: string;
  created_at: Generated<Date>;
  last_seen_at: Generated<Date>;
}

interface ConversationsTable {
  id: Generated<number>;
  session_id: number;
  title: Generated<string>;
  created_at: Generated<Date>;
  /** Bumped whenever a message is added. */
  updated_at: Generated<Date>;
}

/**
 * Messages form a tree per conversation: `parent_id` is the previous turn; regenerating a reply adds a
 * sibling (same parent). The parent is always in the same conversation and has a smaller id
 * (enforced by a composite foreign key and a CHECK), so the tree has no cycles.
 */
interface MessagesTable {
  id: Generated<number>;
  conversation_id: number;
  parent_id: number | null;
  role: MessageRole;
  /** Who wrote it (see MessageOrigin); `client` unless set. */
  origin: Generated<MessageOrigin>;
  /** Empty while a reply is being generated; set when it finishes. */
  content: Generated<string>;
  /** The model version that wrote an assistant reply. */
  model_version_id: number | null;
  /** The resolved decoding options of an assistant reply. */
  decoding: NullableJsonb<JsonObject>;
  /** Null while generating, and for client messages. */
  finish_reason: FinishReason | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  timings: NullableJsonb<MessageTimings>;
  created_at: Generated<Date>;
}

/** One rating per (session, message); rating again updates it, value 0 (API) deletes it. */
interface RatingsTable {
  id: Generated<number>;
  message_id: number;
  session_id: number;
  value: RatingValue;
  reason: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/**
 * A preference: `chosen` is better than `rejected` as a reply to the prompt.
 * Two forms, tied to `source` by a CHECK:
 * - `siblings` / `compare`: the three message ids are set (both replies are children of the prompt
 *   message, enforced by foreign keys), the text columns are null.
 * - `import` / `bootstrap`: the message ids are null; `prompt_context` (a ChatTurn[] ending with the
 *   prompt) and the two reply texts are set.
 */
interface PreferencePairsTable {
  id: Generated<number>;
  source: PairSource;
  prompt_message_id: number | null;
  chosen_message_id: number | null;
  rejected_message_id: number | null;
  prompt_context: NullableJsonb<ChatTurn[]>;
  chosen_text: string | null;
  rejected_text: string | null;
  created_at: Generated<Date>;
}

/** Which model versions were trained on which pairs. */
interface PreferencePairUsesTable {
  pair_id: number;
  model_version_id: number;
  created_at: Generated<Date>;
}

/** Policy and reward model checkpoints. At most one `active` version per kind (partial unique index). */
interface ModelVersionsTable {
  id: Generated<number>;
  kind: ModelKind;
  parent_id: number | null;
  checkpoint_path: string;
  /** Hex sha256 of the checkpoint's weights. */
  sha256: string;
  metrics: DefaultedJsonb<JsonObject>;
  status: Generated<ModelStatus>;
  /** Why a candidate was rejected (gate failures, load errors). */
  reasons: DefaultedJsonb<string[]>;
  created_at: Generated<Date>;
  /** Set when the version last became active; required while active. */
  activated_at: Date | null;
}

/** Background training runs. At most one `running` run (partial unique index). */
interface TrainingRunsTable {
  id: Generated<number>;
  status: Generated<TrainingRunStatus>;
  config: DefaultedJsonb<JsonObject>;
  metrics: DefaultedJsonb<JsonObject>;
  error: string | null;
  created_at: Generated<Date>;
  started_at: Date | null;
  /** Set exactly when the status is final (succeeded, failed, cancelled). */
  finished_at: Date | null;
  policy_version_id: number | null;
  reward_version_id: number | null;
}

export interface Database {
  sessions: SessionsTable;
  conversations: ConversationsTable;
  messages: MessagesTable;
  ratings: RatingsTable;
  preference_pairs: PreferencePairsTable;
  preference_pair_uses: PreferencePairUsesTable;
  model_versions: ModelVersionsTable;
  training_runs: TrainingRunsTable;
}

export type Session = Selectable<SessionsTable>;

export type Conversation = Selectable<ConversationsTable>;

export type Message = Selectable<MessagesTable>;

export type Rating = Selectable<RatingsTable>;

export type PreferencePair = Selectable<PreferencePairsTable>;

export type ModelVersion = Selectable<ModelVersionsTable>;

export type TrainingRun = Selectable<TrainingRunsTable>;
