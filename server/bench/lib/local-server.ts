/**
 * A real server for the benchmarks, in this process: 127.0.0.1 on a free port, embedded in-memory
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
import { pino } from 'pino';
import type { PresetName } from '../../../model/gpt/config.ts';
import { loadConfig, type LogLevel } from '../../config.ts';
import { insertModelVersion, openMemoryDatabase } from '../../db/index.ts';
import { readCheckpointIdentity } from '../../default-model.ts';
import { createServer, type RunningServer } from '../../server.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const INIT_TEXT = join(ROOT, 'tests/fixtures/wiki-sample.txt');

export type ModelChoice = { kind: 'checkpoint'; dir: string } | { kind: 'random'; preset: PresetName };

/** The shipped chat model when present (a trained `small`), else undefined. */
export function shippedCheckpoint(): string | undefined {
  const dir = join(ROOT, 'models/default/policy');
  return existsSync(join(dir, 'meta.json')) ? dir : undefined;
}

export interface LocalServer {
  url: string;
  adminToken: string;
  server: RunningServer;
  model: { source: 'checkpoint' | 'random-init'; checkpoint: string; preset: PresetName | null; params: number | null; config: Record<string, unknown> | null };
  /** Registers a copy of the served checkpoint as another (candidate) policy version; returns its id. */
  addPolicyVersion(): Promise<number>;
  close(): Promise<void>;
}

export interface LocalServerOptions {
  log: (line: string) => void;
  /** Server settings on top of the environment's (e.g. RATE_LIMIT_PER_MINUTE). */
  env?: Record<string, string>;
}

export async function startLocalServer(choice: ModelChoice, { log, env = {} }: LocalServerOptions): Promise<LocalServer> {
  const state = await mkdtemp(join(tmpdir(), 'rlhf-bench-'));
  const cleanupState = () => rm(state, { recursive: true, force: true });
  try {
    let checkpoint: string;
    if (choice.kind === 'checkpoint') checkpoint = choice.dir;
    else {
      log(`initialising a random ${choice.preset} model`);
      const { initCheckpoint } = await import('../../../model/cli/init-checkpoint.ts');
      checkpoint = await initCheckpoint({ preset: choice.preset, out: join(state, 'model'), text: INIT_TEXT });
    }
    const adminToken = randomBytes(24).toString('hex');
    const config = loadConfig({
      env: {
        ...process.env,
        // The per-session rate limit is for people; the clients here are few sessions sending many requests.
        RATE_LIMIT_PER_MINUTE: '100000',
        // The simulated users all connect from loopback.
        RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '1000000',
        MAX_INFLIGHT_PER_ADDRESS: '10000',
        FEEDBACK_PER_MINUTE: '100000',
        FEEDBACK_PER_ADDRESS_PER_MINUTE: '1000000',
        SESSIONS_PER_ADDRESS_PER_MINUTE: '1000000',
        ...env,
        PORT: '0',
        HOST: '127.0.0.1',
        STATE_DIR: state,
        CHECKPOINT: checkpoint,
        ADMIN_TOKEN: adminToken,
        SHUTDOWN_GRACE_MS: '0',
        DATABASE_URL: '',
      },
    });
    // The server logs JSON lines on stdout by default; the benchmarks keep stdout for their result.
    const level: LogLevel = process.env.LOG_LEVEL ? config.logLevel : 'error';
    const logger = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
    const database = await openMemoryDatabase();
    let server: RunningServer;
    try {
      server = await createServer(config, { database, logger });
    } catch (err) {
      await database.close();
      throw err;
    }
    const loaded = server.deps.engine.activeModel;
    let copies = 0;
    return {
      url: server.url,
      adminToken,
      server,
      model: {
        source: choice.kind === 'checkpoint' ? 'checkpoint' : 'random-init',
        checkpoint,
        preset: choice.kind === 'random' ? choice.preset : null,
        params: loaded?.params ?? null,
        config: loaded?.config ?? null,
      },
      async addPolicyVersion() {
        const dir = join(state, `policy-copy-${++copies}`);
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
          await server.close();
        } finally {
          await database.close();
          await cleanupState();
        }
      },
    };
  } catch (err) {
    await cleanupState();
    throw err;
  }
}
