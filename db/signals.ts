/**
 * Cross-process signals through the database: NOTIFY/LISTEN channels (a new model version, a queued
 * training run) and the trainer's session lock (only one process trains at a time; the lock dies with
 * its connection, so a killed trainer never holds it). With PGlite everything is in one process: a
 * NOTIFY has no other listener and the lock is always this process's.
 */
import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from './util.ts';

export const CHANNELS = {
  /** A policy or reward version was published, activated or rejected. */
  models: 'rlhf_model_versions',
  /** A training run was queued. */
  runs: 'rlhf_training_runs',
} as const;
type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];

/** Arbitrary but fixed key of the trainer's advisory lock. */
const TRAINER_LOCK_KEY = 0x726c6866; // "rlhf"

export async function notify(db: Db, channel: Channel, payload = ''): Promise<void> {
  await sql`select pg_notify(${channel}, ${payload})`.execute(db);
}

export interface Listener {
  close(): Promise<void>;
}

/**
 * LISTENs on `channels` over a dedicated connection and reconnects (every `retryMs`) when it drops;
 * `onReconnect` runs after each reconnection, since notifications sent meanwhile were lost.
 */
export function listen(
  connectionString: string,
  channels: Channel[],
  handlers: { onNotify: (channel: string, payload: string) => void; onReconnect?: () => void; onError?: (err: Error) => void },
  retryMs = 2000,
): Listener {
  let client: pg.Client | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let connects = 0;
  const connect = async () => {
    if (closed) return;
    const c = new pg.Client({ connectionString });
    c.on('error', (err) => {
      handlers.onError?.(err);
      retry(c);
    });
    c.on('end', () => retry(c));
    c.on('notification', (n) => handlers.onNotify(n.channel, n.payload ?? ''));
    try {
      await c.connect();
      for (const ch of channels) await c.query(`LISTEN ${ch}`);
      if (closed) return void c.end().catch(() => {});
      client = c;
      if (connects++ > 0) handlers.onReconnect?.();
    } catch (err) {
      handlers.onError?.(err as Error);
      retry(c);
    }
  };
  const retry = (c: pg.Client) => {
    if (client === c) client = null;
    c.removeAllListeners('end');
    c.end().catch(() => {});
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, retryMs);
  };
  void connect();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      const c = client;
      client = null;
      if (c) {
        c.removeAllListeners('end');
        await c.end().catch(() => {});
      }
    },
  };
}

export interface TrainerLock {
  /** False once the lock's connection is lost (another process may take it). */
  readonly held: boolean;
  /**
   * Asks the database (on `db`, e.g. inside the transaction about to publish) whether the lock's
   * connection still holds it: `held` learns of a lost connection only when the socket reports it.
   */
  stillHeld(db: Db): Promise<boolean>;
  release(): Promise<void>;
}

/** Tries to become the one trainer; null when another process holds the lock. */
export async function tryTrainerLock(connectionString: string, onLost: (err: Error) => void): Promise<TrainerLock | null> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  let held = false;
  try {
    const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [TRAINER_LOCK_KEY]);
    held = r.rows[0]?.ok === true;
  } finally {
    if (!held) await c.end().catch(() => {});
  }
  if (!held) return null;
  const backendPid = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
  let released = false;
  const lost = (err: Error) => {
    if (!held) return;
    held = false;
    if (!released) onLost(err);
  };
  c.on('error', lost);
  c.on('end', () => lost(new Error('the trainer lock connection closed')));
  return {
    get held() {
      return held;
    },
    async stillHeld(db: Db) {
      if (!held) return false;
      // A bigint advisory key shows as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
      const r = await sql<{ n: number }>`select count(*)::int as n from pg_locks
        where locktype = 'advisory' and granted and pid = ${backendPid} and objsubid = 1
          and classid = ${Math.floor(TRAINER_LOCK_KEY / 2 ** 32)} and objid = ${TRAINER_LOCK_KEY % 2 ** 32}`.execute(db);
      return r.rows[0]?.n === 1;
    },
    async release() {
      released = true;
      held = false;
      await c.end().catch(() => {});
    },
  };
}
