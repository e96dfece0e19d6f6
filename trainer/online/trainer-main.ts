/**
 * `npm run trainer`: the online trainer as its own process, for the scaled deployment — any number of
 * servers (TRAINER=off) and one trainer share a PostgreSQL database (DATABASE_URL) and a checkpoint
 * directory (CHECKPOINT_DIR, shared storage when they are on different hosts). The trainer queues
 * runs on its schedule, takes runs queued by POST /api/admin/train (woken by NOTIFY), trains, and
 * publishes; the servers swap on NOTIFY. A second trainer waits as a standby until the first stops.
 *
 * Settings: DATABASE_URL (required), STATE_DIR, LOG_LEVEL, and the TRAIN_* / CHECKPOINT_DIR variables
 * of the README's table. Exit 2: invalid configuration; exit 1: start-up failed.
 */
import { pino } from 'pino';
import { z } from 'zod';
import { CHANNELS, listen, migrateToLatest, openDatabase } from '../../server/db/index.ts';
import { OnlineTrainer } from './online-trainer.ts';
import { TRAINER_SETTINGS, trainerConfigFrom, type TrainerSettingValues } from './trainer-settings.ts';

const SETTINGS = {
  DATABASE_URL: z.string({ error: 'is required: the trainer process shares a PostgreSQL database with the servers (with the embedded database the server trains by itself)' }).regex(/^postgres(ql)?:\/\//, { error: 'must start with postgres:// or postgresql://' }),
  STATE_DIR: z.string().min(1).default('./.state'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ...Object.fromEntries(Object.entries(TRAINER_SETTINGS).map(([k, s]) => [k, s.schema])),
};

// Checkpoints are private to the user running the trainer (new files 0600, directories 0700).
process.umask(0o077);

const env = Object.fromEntries(Object.entries(process.env).map(([k, v]) => [k, v === '' ? undefined : v]));
const problems: string[] = [];
const values: Record<string, unknown> = {};
for (const [key, schema] of Object.entries(SETTINGS)) {
  const parsed = (schema as z.ZodType).safeParse(env[key]);
  if (parsed.success) values[key] = parsed.data;
  // The password of a DATABASE_URL stays out of the message.
  else problems.push(`${key}=${key === 'DATABASE_URL' && env[key] ? JSON.stringify(env[key]!.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@]*@/i, '$1***@')) : JSON.stringify(env[key] ?? null)}: ${parsed.error.issues[0].message}`);
}
let config: ReturnType<typeof trainerConfigFrom> | undefined;
if (problems.length === 0) {
  try {
    config = trainerConfigFrom(values as TrainerSettingValues, { stateDir: String(values.STATE_DIR), cwd: process.cwd() });
  } catch (err) {
    problems.push((err as Error).message);
  }
}
if (!config || problems.length > 0) {
  process.stderr.write(`invalid configuration:\n  ${problems.join('\n  ')}\n`);
  process.exit(2);
}

const log = pino({ level: String(values.LOG_LEVEL), base: { pid: process.pid, component: 'trainer' }, timestamp: pino.stdTimeFunctions.isoTime });
try {
  const database = await openDatabase({ databaseUrl: String(values.DATABASE_URL), stateDir: String(values.STATE_DIR), poolSize: 3, onPoolError: (err) => log.warn({ err }, 'PostgreSQL pool error') });
  for (const r of await migrateToLatest(database.db)) log.info({ migration: r.migration, status: r.status }, 'migration applied');
  const trainer = new OnlineTrainer({ db: database.db, connectionString: database.connectionString, config, log });
  const wakeUp = listen(database.connectionString!, [CHANNELS.runs], {
    onNotify: () => trainer.wake(),
    onReconnect: () => trainer.wake(),
    onError: (err) => log.warn({ err }, `LISTEN connection: ${err.message}`),
  });
  trainer.start();
  log.info({ min_new_pairs: config.minNewFeedback, interval_s: config.intervalSec, checkpoints: config.checkpointDir }, 'trainer started');
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'stopping (a running run is cancelled)');
    void (async () => {
      await trainer.stop();
      await wakeUp.close();
      await database.close();
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (err) {
  log.fatal({ err }, `start-up failed: ${(err as Error).message}`);
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
}
