/**
 * A real server in this process (the benchmarks' and the tests'): 127.0.0.1 on a free port, embedded in-memory
 * PGlite, a throw-away state directory, and either a given checkpoint or a randomly initialised model of
 * a preset. In-process so that the engine worker's own figures (deps.engine.stats(): tensors, rows) can
 * be read next to the process's RSS; the engine runs in its worker thread either way, so the clients
 * here share the main thread with the server's socket and database work, not with the forward passes.
 *
 * A random model keeps generating to max_new_tokens (its end-of-turn is as likely as any token), so
 * throughput figures do not depend on how chatty a trained model happens to be.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { SHIPPED_POLICY_DIR } from '../../model/checkpoint/default-checkpoint.ts';
import type { PresetName } from '../../model/gpt/config.ts';
import { loadConfig, type LogLevel } from '../../server/config.ts';
import { insertModelVersion, openMemoryDatabase, type DatabaseHandle } from '../../db/index.ts';
import { readCheckpointIdentity } from '../../server/initial-policy.ts';
import { createServer, type RunningServer } from '../../server/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type ModelChoice = { kind: 'checkpoint'; dir: string } | { kind: 'random'; preset: PresetName };

/** The shipped chat model when present (a trained `small`), else undefined. */
export function shippedCheckpoint(): string | undefined {
  const dir = join(ROOT, SHIPPED_POLICY_DIR);
  return existsSync(join(dir, 'meta.json')) ? dir : undefined;
}

export interface LocalServer {
  url: string;
  adminToken: string;
  server: RunningServer;
  /** The embedded database's query count and busy time so far. */
  databaseStats(): { queries: number; busyMs: number } | null;
  model: { source: 'checkpoint' | 'random-init'; checkpoint: string; preset: PresetName | null; params: number | null; config: Record<string, unknown> | null };
  /** Registers a copy of the served checkpoint as another (candidate) policy version; returns its id. */
  addPolicyVersion(): Promise<number>;
  close(): Promise<void>;
}

interface LocalServerOptions {
  log: (line: string) => void;
  /** Server settings on top of the environment's (e.g. RATE_LIMIT_PER_MINUTE). */
  env?: Record<string, string>;
}

export interface InProcessServer {
  server: RunningServer;
  url: string;
  stateDir: string;
  database: DatabaseHandle;
  /** Closes the server, then the database, and removes the state directory. */
  close(): Promise<void>;
}

/**
 * A server on 127.0.0.1 (a free port) over `database`, which it owns from here on (closed with it, or
 * on a failed start), with a throw-away state directory. `env` holds the other settings.
 */
export async function startInProcessServer({ database, env, logger }: { database: DatabaseHandle; env: Record<string, string | undefined>; logger?: Logger }): Promise<InProcessServer> {
  let stateDir: string | undefined;
  try {
    stateDir = await mkdtemp(join(tmpdir(), 'rlhf-server-'));
    const config = loadConfig({ env: { ...env, PORT: '0', HOST: '127.0.0.1', STATE_DIR: stateDir, SHUTDOWN_GRACE_MS: '0', DATABASE_URL: '' } });
    const server = await createServer(config, { database, logger });
    const dir = stateDir;
    return {
      server,
      url: server.url,
      stateDir: dir,
      database,
      async close() {
        try {
          await server.close();
        } finally {
          await database.close();
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await database.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
}

export async function startLocalServer(choice: ModelChoice, { log, env = {} }: LocalServerOptions): Promise<LocalServer> {
  // The random model is written here; the server's own state directory is its own.
  const scratch = await mkdtemp(join(tmpdir(), 'rlhf-bench-'));
  const cleanupScratch = () => rm(scratch, { recursive: true, force: true });
  try {
    let checkpoint: string;
    if (choice.kind === 'checkpoint') checkpoint = choice.dir;
    else {
      log(`initialising a random ${choice.preset} model`);
      const { initCheckpoint, INIT_TEXT } = await import('../../model/checkpoint/init-checkpoint.ts');
      checkpoint = await initCheckpoint({ preset: choice.preset, out: join(scratch, 'model'), text: INIT_TEXT });
    }
    const adminToken = randomBytes(24).toString('hex');
    // The per-session and per-address limits are for people; the clients here are few sessions on
    // loopback sending many requests.
    const settings = {
      ...process.env,
      RATE_LIMIT_PER_MINUTE: '100000',
      RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '1000000',
      MAX_INFLIGHT_PER_ADDRESS: '10000',
      FEEDBACK_PER_MINUTE: '100000',
      FEEDBACK_PER_ADDRESS_PER_MINUTE: '1000000',
      SESSIONS_PER_ADDRESS_PER_MINUTE: '1000000',
      ...env,
      CHECKPOINT: checkpoint,
      ADMIN_TOKEN: adminToken,
    };
    // The server logs JSON lines on stdout by default; the benchmarks keep stdout for their result.
    const level: LogLevel = process.env.LOG_LEVEL ? loadConfig({ env: settings }).logLevel : 'error';
    const logger = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
    const { server, close, database } = await startInProcessServer({ database: await openMemoryDatabase(), env: settings, logger });
    const loaded = server.deps.engine.activeModel;
    let copies = 0;
    return {
      url: server.url,
      adminToken,
      server,
      databaseStats: () => database.stats?.() ?? null,
      model: {
        source: choice.kind === 'checkpoint' ? 'checkpoint' : 'random-init',
        checkpoint,
        preset: choice.kind === 'random' ? choice.preset : null,
        params: loaded?.params ?? null,
        config: loaded?.config ?? null,
      },
      async addPolicyVersion() {
        const dir = join(scratch, `policy-copy-${++copies}`);
        await cp(checkpoint, dir, { recursive: true });
        const { sha256 } = await readCheckpointIdentity(dir);
        const row = await insertModelVersion(server.deps.db, {
          kind: 'policy',
          checkpointPath: dir,
          sha256,
          parentId: server.deps.models.current?.id ?? null,
          metrics: { source: 'bench' },
        });
        return row.id;
      },
      async close() {
        try {
          await close();
        } finally {
          await cleanupScratch();
        }
      },
    };
  } catch (err) {
    await cleanupScratch();
    throw err;
  }
}
