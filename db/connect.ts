// Opens the feedback store: PostgreSQL through a `pg` pool when DATABASE_URL is set, otherwise an
// embedded PGlite persisted under `${stateDir}/pgdata`. Both speak the same SQL, so the repositories
// and migrations do not care which one they get.
import { link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import { PGliteDialect } from './pglite-dialect.ts';
import { PGliteRemote, type EmbeddedDatabaseStats } from './pglite-remote.ts';
import pg from 'pg';
import { makePrivate } from './private-files.ts';
import type { Database } from './schema.ts';

export type DatabaseKind = 'pglite' | 'postgres';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** The PostgreSQL server's URL (postgres only): LISTEN and session locks need their own connection. */
  connectionString?: string;
  /** Closes the pool or the embedded database (idempotent). */
  close(): Promise<void>;
  /** The embedded database's query count and busy time (pglite only: its one thread is a shared resource). */
  stats?(): EmbeddedDatabaseStats;
}

interface OpenDatabaseOptions {
  /** `postgres://…` or `postgresql://…`; unset or empty → embedded PGlite. */
  databaseUrl?: string;
  /** Where the embedded database lives (`${stateDir}/pgdata`); created when missing. */
  stateDir: string;
  /** Connections in the `pg` pool (default 10). */
  poolSize?: number;
  /**
   * Errors of idle pooled connections (e.g. the server restarted). Without a listener `pg` would
   * crash the process; the pool drops the broken connection either way. Default: a process warning.
   */
  onPoolError?: (error: Error) => void;
}

const INT8_OID = 20;

/** int8 (ids, counts) as a JS number; refuses values that a number cannot hold exactly. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} exceeds Number.MAX_SAFE_INTEGER`);
  return value;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const { databaseUrl, stateDir } = options;
  if (databaseUrl) return openPostgres(databaseUrl, options);
  return openPGlite(path.join(stateDir, 'pgdata'));
}

/** An empty in-memory PGlite database, for tests. Run the migrations before use. */
export async function openMemoryDatabase(): Promise<DatabaseHandle> {
  return pgliteHandle(await PGliteRemote.open(), async () => {});
}

async function openPostgres(databaseUrl: string, options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error('DATABASE_URL is not a valid URL (expected postgres://user@host:port/database)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`DATABASE_URL must start with postgres:// or postgresql://, got ${url.protocol}//`);
  }
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  pool.on('error', options.onPoolError ?? ((error) => process.emitWarning(`PostgreSQL pool: ${error.message}`)));
  // Fail at start-up with a clear message rather than at the first request.
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    throw new Error(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    kind: 'postgres',
    connectionString: databaseUrl,
    close: () => (closing ??= db.destroy()),
  };
}

/** How often the embedded database's files are made private again while it is open (see openPGlite). */
const PRIVATE_FILES_MS = 60_000;

/**
 * The data directory is 0700 and its files 0600: PGlite's file system sets every file's mode to 0666
 * itself (the process umask does not apply), so the files are tightened when the database opens, every
 * PRIVATE_FILES_MS while it is open (files created meanwhile sit inside the 0700 directory, which other
 * users cannot enter) and when it closes.
 */
async function openPGlite(dataDir: string): Promise<DatabaseHandle> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const unlock = await lockDataDir(dataDir);
  let pglite: PGliteRemote;
  try {
    pglite = await PGliteRemote.open(dataDir);
    await makePrivate(dataDir);
  } catch (error) {
    await unlock();
    throw new Error(`cannot open the embedded database in ${dataDir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const timer = setInterval(() => void makePrivate(dataDir), PRIVATE_FILES_MS);
  timer.unref();
  return pgliteHandle(pglite, async () => {
    clearInterval(timer);
    await makePrivate(dataDir).catch(() => {});
    await unlock();
  });
}

function pgliteHandle(pglite: PGliteRemote, unlock: () => Promise<void>): DatabaseHandle {
  const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    kind: 'pglite',
    stats: () => pglite.stats(),
    close: () =>
      (closing ??= (async () => {
        try {
          await db.destroy(); // closes PGlite if kysely has used it
          await pglite.close();
        } finally {
          await unlock();
        }
      })()),
  };
}

/**
 * PGlite has no protection against two processes opening the same data directory, which corrupts it
 * (e.g. `npm run migrate` while the server runs). A lock file holding the owner's pid refuses a second
 * opener; a lock left by a dead process is taken over. The lock appears with its pid already inside:
 * written to a temporary file first, then hard-linked to the lock's name (which fails if the lock
 * exists), so that a second opener never reads an empty lock and takes it.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = `${dataDir}.lock`;
  const temp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(temp, lockPath);
        return () => rm(lockPath, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (await lockIsHeld(lockPath)) {
          throw new Error(
            `the embedded database in ${dataDir} is in use (lock ${lockPath}); stop the process using it, ` +
              'or point DATABASE_URL at a PostgreSQL server to share one database between processes',
          );
        }
        await rm(lockPath, { force: true });
      }
    }
  } finally {
    await rm(temp, { force: true });
  }
  throw new Error(`could not lock the embedded database in ${dataDir} (${lockPath})`);
}

/** Whether the process (or, for our own pid, this process: another thread) that wrote the lock lives. */
async function lockIsHeld(lockPath: string): Promise<boolean> {
  const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]).catch(() => []);
  if (text === undefined || info === undefined) return false;
  const owner = Number.parseInt(text, 10);
  if (!Number.isInteger(owner) || owner <= 0) return false;
  if (owner !== process.pid) return isAlive(owner);
  // Our pid: written by this process (another thread, or an open not yet closed) if written since it
  // started; otherwise left by an earlier process that had the same pid (containers reuse pids).
  const processStart = Date.now() - process.uptime() * 1000;
  return info.mtimeMs >= processStart - 1000;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href;
}
