/**
 * `npm run trainer`: the online trainer as its own process, for the scaled deployment — any number of
 * servers (TRAINER=off) and one trainer share a PostgreSQL database (DATABASE_URL) and a checkpoint
 * directory (CHECKPOINT_DIR, shared storage when they are on different hosts). The trainer queues
 * runs on its schedule, takes runs queued by POST /api/admin/train (woken by NOTIFY), trains, and
 * publishes; the servers swap on NOTIFY. A second trainer waits as a standby until the first stops.
 *
 * Settings: DATABASE_URL (required), STATE_DIR, LOG_LEVEL, and the TRAIN_* / CHECKPOINT_DIR variables
 * of docs/configuration.md. Exit 2: invalid configuration; exit 1: start-up failed.
 */
import { z } from 'zod';
import { CHANNELS, listen, migrateToLatest, openDatabase } from '../../db/index.ts';
import { OnlineTrainer } from './online-trainer.ts';
import { ConfigError, createLogger, LOG_LEVEL_SETTING, readSettings, runEntryPoint, STATE_DIR_SETTING } from './process-setup.ts';
import { TRAINER_SETTINGS, trainerConfigFrom } from './trainer-settings.ts';

const SETTINGS = {
  DATABASE_URL: {
    flag: undefined,
    schema: z.string({ error: 'is required: the trainer process shares a PostgreSQL database with the servers (with the embedded database the server trains by itself)' }).regex(/^postgres(ql)?:\/\//, { error: 'must start with postgres:// or postgresql://' }),
    doc: 'the PostgreSQL database shared with the servers',
  },
  STATE_DIR: STATE_DIR_SETTING,
  LOG_LEVEL: LOG_LEVEL_SETTING,
  ...TRAINER_SETTINGS,
};

// Checkpoints are private to the user running the trainer (new files 0600, directories 0700).
process.umask(0o077);

function configure() {
  const { values, problems } = readSettings(SETTINGS, { env: process.env });
  if (problems.length > 0) throw new ConfigError(problems);
  try {
    return { ...values, trainer: trainerConfigFrom(values, { stateDir: values.STATE_DIR, cwd: process.cwd() }) };
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
}

await runEntryPoint({
  configure,
  logger: (settings) => createLogger(settings.LOG_LEVEL, { component: 'trainer' }),
  stopping: 'stopping (a running run is cancelled)',
  async start(settings, log) {
    const config = settings.trainer;
    const database = await openDatabase({ databaseUrl: settings.DATABASE_URL, stateDir: settings.STATE_DIR, poolSize: 3, onPoolError: (err) => log.warn({ err }, 'PostgreSQL pool error') });
    for (const r of await migrateToLatest(database.db)) log.info({ migration: r.migration, status: r.status }, 'migration applied');
    const trainer = new OnlineTrainer({ db: database.db, connectionString: database.connectionString, config, log });
    const wakeUp = listen(database.connectionString!, [CHANNELS.runs], {
      onNotify: () => trainer.wake(),
      onReconnect: () => trainer.wake(),
      onError: (err) => log.warn({ err }, `LISTEN connection: ${err.message}`),
    });
    trainer.start();
    log.info({ min_new_pairs: config.minNewFeedback, interval_s: config.intervalSec, checkpoints: config.checkpointDir }, 'trainer started');
    return async () => {
      await trainer.stop();
      await wakeUp.close();
      await database.close();
      log.info('stopped');
    };
  },
});
