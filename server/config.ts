/**
 * The server's configuration: one typed object read from the environment (and `npm start -- --flag`s,
 * which win over the environment), with defaults. Invalid values stop start-up with a message naming
 * every bad variable. `SETTINGS` is the single list of variables; docs/configuration.md's table mirrors it.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { BACKEND_NAMES } from '../model/backend.ts';
import { MAX_BEAM_WIDTH, MAX_NEW_TOKENS } from '../model/decode/options.ts';
import { ConfigError, LOG_LEVEL_SETTING, readSettings, STATE_DIR_SETTING, type LogLevel } from '../trainer/online/process-setup.ts';
import { TRAINER_SETTINGS, trainerConfigFrom, type TrainerConfig } from '../trainer/online/trainer-settings.ts';

export { ConfigError, type LogLevel };

export interface ServerLimits {
  /** Characters in one user message (WebSocket) or in all messages of a /v1 request. */
  maxPromptChars: number;
  /** Cap on `max_new_tokens` (the model's own cap is MAX_NEW_TOKENS of model/decode/options.ts). */
  maxNewTokens: number;
  /** Cap on `beam_width`. */
  maxBeamWidth: number;
  /** WebSocket frames larger than this close the socket with 1009; also the REST body limit. */
  maxFrameBytes: number;
  /** A socket whose unsent frames exceed this many bytes (a client that does not read) is closed with 1008. */
  maxSocketBufferBytes: number;
  /** Generations one session may have running or queued at once (all sockets and /v1 together). */
  maxInflightPerSession: number;
  /** Generation requests one session may start per minute. */
  rateLimitPerMinute: number;
  /** Generations one client address may have in flight (all its sessions together). */
  maxInflightPerAddress: number;
  /** Generation requests one client address may start per minute. */
  rateLimitPerAddressPerMinute: number;
  /** Ratings and A/B choices per minute, per session and per client address. */
  feedbackPerMinute: number;
  feedbackPerAddressPerMinute: number;
  /** New sessions per minute per client address. */
  sessionsPerAddressPerMinute: number;
}

export interface ServerConfig {
  port: number;
  host: string;
  /** postgres://… → PostgreSQL; unset → embedded PGlite under `${stateDir}/pgdata`. */
  databaseUrl: string | undefined;
  /** Absolute. */
  stateDir: string;
  /** A checkpoint to serve (registered and activated at start-up); unset → the active version. */
  checkpoint: string | undefined;
  /** Unset → read from / generated into `${stateDir}/admin-token`. */
  adminToken: string | undefined;
  /** Origins allowed to open the WebSocket besides the server's own. */
  allowedOrigins: string[];
  /** The origin browsers load the web client from; unset: http://HOST:PORT as listened on. */
  publicOrigin: string | undefined;
  /** Proxies in front of the server whose X-Forwarded-For entries are believed (0: none, use the socket's peer). */
  trustProxy: number;
  logLevel: LogLevel;
  limits: ServerLimits;
  engine: { maxRows: number; maxQueue: number };
  /** On SIGTERM/SIGINT, how long running replies may finish before they are cancelled. */
  shutdownGraceMs: number;
  /** `embedded`: this process runs the online trainer (in a child process); `off`: `npm run trainer` does. */
  trainer: TrainerConfig & { mode: TrainerMode };
  /** How often the served model is checked against the database's active version (besides NOTIFY). */
  modelSyncMs: number;
}

const TRAINER_MODES = ['embedded', 'off'] as const;
type TrainerMode = (typeof TRAINER_MODES)[number];

const int = (min: number, max: number) =>
  z.coerce.number({ error: 'must be an integer' }).int({ error: `must be an integer in [${min}, ${max}]` })
    .min(min, { error: `must be an integer in [${min}, ${max}]` })
    .max(max, { error: `must be an integer in [${min}, ${max}]` });

const origin = z.string().refine((s) => {
  try {
    return new URL(s).origin === s;
  } catch {
    return false;
  }
}, { error: 'each origin must look like https://example.com (scheme, host, optional port; no path)' });

/** Every setting: environment variable, command-line flag (if any), schema with default, and doc line. */
const SETTINGS = {
  PORT: { flag: 'port', schema: int(0, 65535).default(8080), doc: 'TCP port (0 picks a free one)' },
  HOST: { flag: 'host', schema: z.string().min(1).default('127.0.0.1'), doc: 'interface to listen on; 0.0.0.0 to accept other machines' },
  DATABASE_URL: { flag: 'database-url', schema: z.string().regex(/^postgres(ql)?:\/\//, { error: 'must start with postgres:// or postgresql://' }).optional(), doc: 'PostgreSQL server; unset: embedded PGlite under STATE_DIR' },
  STATE_DIR: STATE_DIR_SETTING,
  CHECKPOINT: { flag: 'checkpoint', schema: z.string().min(1).optional(), doc: 'serve this checkpoint (registered as a model version and activated at start-up)' },
  ADMIN_TOKEN: { flag: undefined, schema: z.string().min(16, { error: 'must be at least 16 characters' }).optional(), doc: 'bearer token of the admin routes; unset: generated once into STATE_DIR/admin-token (mode 0600)' },
  ALLOWED_ORIGINS: { flag: undefined, schema: z.string().default(''), doc: 'comma-separated origins allowed to open /ws besides the server\'s own' },
  PUBLIC_ORIGIN: { flag: 'public-origin', schema: origin.optional(), doc: 'the origin browsers use to reach the server (e.g. https://chat.example.com behind a proxy); WebSocket upgrades and cookie-authenticated writes must come from it. Unset: http://HOST:PORT as listened on (and localhost for a loopback HOST)' },
  TRUST_PROXY: { flag: undefined, schema: int(0, 10).default(0), doc: 'number of reverse proxies in front of the server: the client address (for the per-address limits) is read from X-Forwarded-For that many entries from its end. 0: the socket\'s peer address; never set it without a proxy that overwrites the header' },
  LOG_LEVEL: LOG_LEVEL_SETTING,
  MAX_PROMPT_CHARS: { flag: undefined, schema: int(1, 1_000_000).default(8000), doc: 'characters in one user message (all messages of a /v1 request)' },
  MAX_NEW_TOKENS: { flag: undefined, schema: int(1, MAX_NEW_TOKENS).default(256), doc: 'cap on max_new_tokens / max_tokens' },
  MAX_BEAM_WIDTH: { flag: undefined, schema: int(1, MAX_BEAM_WIDTH).default(8), doc: 'cap on beam_width' },
  MAX_FRAME_BYTES: { flag: undefined, schema: int(1024, 16 * 1024 * 1024).default(65536), doc: 'largest WebSocket frame (bigger: close 1009) and REST body (bigger: 413)' },
  WS_MAX_BUFFERED_BYTES: { flag: undefined, schema: int(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024), doc: 'unsent bytes a WebSocket may queue (a client that does not read its frames); beyond it the socket is closed with 1008 and its generations cancelled' },
  MAX_INFLIGHT_PER_SESSION: { flag: undefined, schema: int(1, 1000).default(4), doc: 'generations one session may have in flight' },
  RATE_LIMIT_PER_MINUTE: { flag: undefined, schema: int(1, 100_000).default(60), doc: 'generation requests per session per minute' },
  MAX_INFLIGHT_PER_ADDRESS: { flag: undefined, schema: int(1, 10_000).default(8), doc: 'generations one client address may have in flight, all its sessions together' },
  RATE_LIMIT_PER_ADDRESS_PER_MINUTE: { flag: undefined, schema: int(1, 1_000_000).default(120), doc: 'generation requests per client address per minute' },
  FEEDBACK_PER_MINUTE: { flag: undefined, schema: int(1, 100_000).default(60), doc: 'ratings and A/B choices per session per minute' },
  FEEDBACK_PER_ADDRESS_PER_MINUTE: { flag: undefined, schema: int(1, 1_000_000).default(120), doc: 'ratings and A/B choices per client address per minute' },
  SESSIONS_PER_ADDRESS_PER_MINUTE: { flag: undefined, schema: int(1, 1_000_000).default(10), doc: 'new sessions (POST /api/session) per client address per minute' },
  ENGINE_MAX_ROWS: { flag: undefined, schema: int(1, 256).default(16), doc: 'sequences (beams included) decoded together per step' },
  ENGINE_MAX_QUEUE: { flag: undefined, schema: int(0, 10_000).default(32), doc: 'requests waiting beyond the rows before new ones get busy' },
  SHUTDOWN_GRACE_MS: { flag: undefined, schema: int(0, 600_000).default(10_000), doc: 'on SIGTERM, time running replies get to finish' },
  TRAINER: { flag: 'trainer', schema: z.enum(TRAINER_MODES, { error: `must be one of ${TRAINER_MODES.join(', ')}` }).optional(), doc: 'embedded: this server trains in the background; off: it does not (run `npm run trainer`). Default: embedded with PGlite, off with DATABASE_URL' },
  ...TRAINER_SETTINGS,
  MODEL_SYNC_MS: { flag: undefined, schema: int(100, 3_600_000).default(10_000), doc: 'how often the server checks the database for a newly activated policy (besides NOTIFY on PostgreSQL)' },
  TFJS_BACKEND: { flag: undefined, schema: z.enum(BACKEND_NAMES, { error: `must be one of ${BACKEND_NAMES.join(', ')}` }).optional(), doc: 'force the engine (read by the engine worker)' },
} as const;

/**
 * Resolves the configuration from `env` and `argv` (flags such as `--port 9000`, which win over the
 * environment). Empty variables count as unset. Relative paths resolve against `cwd`.
 */
export function loadConfig({ env = process.env, argv = [], cwd = process.cwd() }: { env?: NodeJS.ProcessEnv; argv?: string[]; cwd?: string } = {}): ServerConfig {
  const { values: v, problems } = readSettings(SETTINGS, { env, argv });
  const origins = (v.ALLOWED_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const o of origins) {
    const parsed = origin.safeParse(o);
    if (!parsed.success) problems.push(`ALLOWED_ORIGINS: ${JSON.stringify(o)}: ${parsed.error.issues[0].message}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const stateDir = resolve(cwd, v.STATE_DIR);
  let trainer: TrainerConfig;
  try {
    trainer = trainerConfigFrom(v, { stateDir, cwd });
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  return {
    port: v.PORT,
    host: v.HOST,
    databaseUrl: v.DATABASE_URL,
    stateDir,
    checkpoint: v.CHECKPOINT === undefined ? undefined : resolve(cwd, v.CHECKPOINT),
    adminToken: v.ADMIN_TOKEN,
    allowedOrigins: origins,
    publicOrigin: v.PUBLIC_ORIGIN,
    trustProxy: v.TRUST_PROXY,
    logLevel: v.LOG_LEVEL,
    limits: {
      maxPromptChars: v.MAX_PROMPT_CHARS,
      maxNewTokens: v.MAX_NEW_TOKENS,
      maxBeamWidth: v.MAX_BEAM_WIDTH,
      maxFrameBytes: v.MAX_FRAME_BYTES,
      maxSocketBufferBytes: v.WS_MAX_BUFFERED_BYTES,
      maxInflightPerSession: v.MAX_INFLIGHT_PER_SESSION,
      rateLimitPerMinute: v.RATE_LIMIT_PER_MINUTE,
      maxInflightPerAddress: v.MAX_INFLIGHT_PER_ADDRESS,
      rateLimitPerAddressPerMinute: v.RATE_LIMIT_PER_ADDRESS_PER_MINUTE,
      feedbackPerMinute: v.FEEDBACK_PER_MINUTE,
      feedbackPerAddressPerMinute: v.FEEDBACK_PER_ADDRESS_PER_MINUTE,
      sessionsPerAddressPerMinute: v.SESSIONS_PER_ADDRESS_PER_MINUTE,
    },
    engine: { maxRows: v.ENGINE_MAX_ROWS, maxQueue: v.ENGINE_MAX_QUEUE },
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    trainer: { ...trainer, mode: v.TRAINER ?? (v.DATABASE_URL ? 'off' : 'embedded') },
    modelSyncMs: v.MODEL_SYNC_MS,
  };
}
