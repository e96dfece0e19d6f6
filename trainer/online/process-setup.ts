/**
 * What the two long-running entry points share, `npm start` (server/main.ts) and `npm run trainer`
 * (trainer-main.ts): settings read from the environment and command-line flags through one table, the
 * logger, and the way the process starts and stops (exit 2 on a bad configuration, 1 on a failed
 * start; SIGINT/SIGTERM stop it gracefully, a second signal at once). It lives with the trainer because
 * the server builds on the trainer, never the other way round.
 */
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { DEFAULT_STATE_DIR } from '../../model/checkpoint/default-checkpoint.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One setting: its environment variable (the table's key), command-line flag (if any), schema with default, doc line. */
interface Setting {
  flag: string | undefined;
  schema: z.ZodType;
  doc: string;
}

type SettingValues<T extends Record<string, Setting>> = { [K in keyof T]: z.output<T[K]['schema']> };

/** The settings both processes read. */
export const STATE_DIR_SETTING = { flag: 'state-dir', schema: z.string().min(1).default(DEFAULT_STATE_DIR), doc: 'runtime state: embedded database, fallback model, admin token' } satisfies Setting;
export const LOG_LEVEL_SETTING = { flag: 'log-level', schema: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'), doc: 'pino log level' } satisfies Setting;

/** Invalid configuration; the message lists every problem, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * Reads every setting of `table` from `env` (empty variables count as unset) and `argv` (flags such as
 * `--port 9000`, which win over the environment). Values that fail their schema are returned as
 * problems naming the variable and the value (secrets masked, see shownValue); an unknown flag throws a ConfigError at once.
 */
export function readSettings<T extends Record<string, Setting>>(table: T, { env, argv = [] }: { env: NodeJS.ProcessEnv; argv?: string[] }): { values: SettingValues<T>; problems: string[] } {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(table)) raw[key] = env[key] === '' ? undefined : env[key];
  Object.assign(raw, parseFlags(table, argv));
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(table)) {
    const parsed = setting.schema.safeParse(raw[key]);
    if (parsed.success) values[key] = parsed.data;
    else problems.push(`${key}=${shownValue(key, raw[key])}: ${parsed.error.issues[0].message}`);
  }
  return { values: values as SettingValues<T>, problems };
}

/**
 * A setting's value as error messages may show it: the admin token never (only its length), a
 * database URL without its password; anything else as given.
 */
function shownValue(key: string, value: string | undefined): string {
  if (value === undefined) return 'null';
  if (key === 'ADMIN_TOKEN') return `(hidden, ${value.length} characters)`;
  if (key === 'DATABASE_URL') return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@]*@/i, '$1***@'));
  return JSON.stringify(value);
}

/** `--port 9000 --checkpoint DIR` → `{ PORT: '9000', CHECKPOINT: 'DIR' }`; unknown flags are errors. */
function parseFlags(table: Record<string, Setting>, argv: string[]): Record<string, string> {
  const byFlag = new Map<string, string>();
  for (const [key, s] of Object.entries(table)) if (s.flag) byFlag.set(s.flag, key);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries([...byFlag.keys()].map((f) => [f, { type: 'string' as const }])),
    }));
  } catch (err) {
    throw new ConfigError([`${(err as Error).message.replace(/\s*\n\s*/g, ' ')} (flags: ${[...byFlag.keys()].map((f) => `--${f}`).join(', ') || 'none'})`]);
  }
  return Object.fromEntries(Object.entries(values).map(([flag, value]) => [byFlag.get(flag)!, String(value)]));
}

/** JSON lines on stdout; `base` fields go on every line. */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}

interface EntryPoint<C> {
  /** Reads and checks the configuration; a ConfigError exits with code 2 and its message. */
  configure(): C;
  logger(config: C): Logger;
  /** Starts the service; resolves to the function that stops it. A failure exits with code 1. */
  start(config: C, log: Logger): Promise<() => Promise<void>>;
  /** Logged when a signal arrives. */
  stopping?: string;
}

/** Runs an entry point: configuration, start, and a graceful stop on SIGINT/SIGTERM (a second signal exits at once). */
export async function runEntryPoint<C>({ configure, logger, start, stopping = 'stopping' }: EntryPoint<C>): Promise<void> {
  let config: C;
  try {
    config = configure();
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const log = logger(config);
  let stop: () => Promise<void>;
  try {
    stop = await start(config, log);
  } catch (err) {
    log.fatal({ err }, `start-up failed: ${(err as Error).message}`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
    return;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, stopping);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
