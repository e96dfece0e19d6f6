/**
 * The scaled deployment against the real PostgreSQL (skipped without DATABASE_URL): two server
 * processes (TRAINER=off) and one `npm run trainer` process share a scratch database and a checkpoint
 * directory. A run queued through one server is taken by the trainer (woken by NOTIFY), and after it
 * both servers serve the new version (swapped on NOTIFY: their periodic check is set to an hour).
 * Then the trainer is killed mid-run: at its next start the run is marked failed, and nothing it
 * trained is visible (no version row, no checkpoint directory).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listModelVersions, type DatabaseHandle } from '../db/index.ts';
import type { ModelFrame } from '../server/protocol.ts';
import { freePort, startChildServer, type ChildServer } from './helpers/child-server.ts';
import { openScratchDatabase } from './helpers/scratch-database.ts';
import { ADMIN_TOKEN, eventually, newSession, TestSocket, tinyCheckpoint } from './helpers/server-harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const url = process.env.DATABASE_URL;
const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' };

// Quick runs whose candidate barely moves, so it passes the gate and is published.
const QUICK = { rm: { maxSteps: 2, batchSize: 8 }, ppo: { iterations: 1, batchSize: 8, miniBatchSize: 8, ppoEpochs: 1, lr: 1e-7, maxNewTokens: 8 }, gate: { maxNewTokens: 8 }, bootstrapPairs: 16 };
// A run long enough to be killed in the middle of its PPO phase.
const SLOW = { ...QUICK, ppo: { ...QUICK.ppo, iterations: 500 } };

interface Run {
  id: number;
  status: string;
  error: string | null;
  policy_version_id: number | null;
  metrics: Record<string, unknown>;
}

/** The fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; null when it is gone. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Running processes whose parent is `parent` and whose command line mentions `script`. */
function childProcesses(parent: number, script: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      const stat = procStat(pid);
      if (!stat || Number(stat[1]) !== parent) return false;
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(script);
      } catch {
        return false;
      }
    });
}

/** Exited (a zombie counts: it runs no more code). */
const exited = (pid: number) => (procStat(pid)?.[0] ?? 'Z') === 'Z';

function startTrainer(env: Record<string, string>): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const base = { ...process.env };
  delete base.NODE_TEST_CONTEXT;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'trainer/online/trainer-main.ts'], { cwd: ROOT, env: { ...base, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c));
  proc.stderr!.on('data', (c: Buffer) => (out += c));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

describe('multi-replica deployment on PostgreSQL: two servers and one trainer process', { skip: url ? false : 'DATABASE_URL is not set', timeout: 600_000 }, () => {
  let database: DatabaseHandle;
  let dirs: string[] = [];
  let servers: ChildServer[] = [];
  let trainer: ReturnType<typeof startTrainer> | null = null;
  let checkpointDir: string;
  let env: Record<string, string>;

  before(async () => {
    database = await openScratchDatabase(url!, 'test_replicas');
    checkpointDir = await mkdtemp(join(tmpdir(), 'replicas-checkpoints-'));
    dirs.push(checkpointDir);
    env = { DATABASE_URL: database.connectionString!, CHECKPOINT_DIR: checkpointDir, ADMIN_TOKEN, TFJS_BACKEND: process.env.TFJS_BACKEND ?? '' };
    const checkpoint = await tinyCheckpoint();
    // One after the other: the first registers the checkpoint and migrates, the second finds both done.
    for (let i = 0; i < 2; i++) {
      const stateDir = await mkdtemp(join(tmpdir(), `replica-${i}-`));
      dirs.push(stateDir);
      servers.push(await startChildServer(await freePort(), { ...env, STATE_DIR: stateDir, CHECKPOINT: checkpoint, TRAINER: 'off', MODEL_SYNC_MS: '3600000' }));
    }
  });

  after(async () => {
    trainer?.proc.kill('SIGKILL');
    await trainer?.exited;
    for (const s of servers) await s.stop();
    await database?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function queueRun(server: ChildServer, config: object): Promise<Run> {
    const res = await fetch(`${server.url}/api/admin/train`, { method: 'POST', headers: admin, body: JSON.stringify({ config }) });
    const text = await res.text();
    assert.equal(res.status, 202, text);
    return (JSON.parse(text) as { run: Run }).run;
  }

  async function getRun(id: number): Promise<Run> {
    const res = await fetch(`${servers[0].url}/api/admin/runs/${id}`, { headers: admin });
    return ((await res.json()) as { run: Run }).run;
  }

  test('a run queued on one server is trained by the trainer process; both servers swap to the new version', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'trainer-'));
    dirs.push(stateDir);
    // An hour between polls: the queued run must reach the trainer by NOTIFY.
    trainer = startTrainer({ ...env, STATE_DIR: stateDir, TRAIN_MIN_NEW_PAIRS: '0', TRAIN_POLL_MS: '3600000' });
    await eventually(() => trainer!.output().includes('trainer started'), { timeoutMs: 60_000, what: `the trainer to start:\n${trainer.output()}` });
    const before = await Promise.all(servers.map(async (s) => ((await (await fetch(`${s.url}/api/models`)).json()) as { serving: number }).serving));
    assert.equal(before[0], before[1]);

    const sockets = await Promise.all(servers.map(async (s) => TestSocket.open(s.wsUrl, { token: await newSession(s.url) })));
    const queued = await queueRun(servers[1], QUICK);
    const run = await eventually(async () => {
      const r = await getRun(queued.id);
      return ['succeeded', 'failed', 'cancelled'].includes(r.status) ? r : null;
    }, { timeoutMs: 300_000, what: 'the run to finish' });
    assert.equal(run.status, 'succeeded', `${run.error}\n${trainer.output().slice(-3000)}`);
    assert.equal(run.metrics.gate_passed, true, JSON.stringify(run.metrics));
    const published = run.policy_version_id!;
    assert.notEqual(published, before[0]);

    for (const [i, s] of servers.entries()) {
      await sockets[i].waitFor((f) => f.type === 'model' && (f as ModelFrame).version === published, { timeoutMs: 60_000 });
      const models = (await (await fetch(`${s.url}/api/models`)).json()) as { serving: number };
      assert.equal(models.serving, published, `server ${i} serves ${models.serving}`);
      const ex = await sockets[i].request({ type: 'chat', id: `after-${i}`, content: 'hello there', decoding: { strategy: 'greedy', max_new_tokens: 6 } });
      assert.equal(ex.done?.model_version, published, JSON.stringify(ex.error));
    }
    for (const s of sockets) s.close();
  });

  test('a trainer killed mid-run: the run is marked failed at its next start, nothing it trained is visible', async () => {
    const queued = await queueRun(servers[0], SLOW);
    await eventually(async () => {
      const r = await getRun(queued.id);
      return r.status === 'running' && r.metrics.phase === 'ppo';
    }, { timeoutMs: 120_000, what: 'the run to reach PPO' });
    const versionsBefore = (await listModelVersions(database.db, { limit: 1000 })).length;
    const children = childProcesses(trainer!.proc.pid!, 'child-main.ts');
    assert.equal(children.length, 1, 'the run trains in one child process of the trainer');
    trainer!.proc.kill('SIGKILL');
    await trainer!.exited;
    assert.equal((await getRun(queued.id)).status, 'running', 'nothing can record the end of a killed run');

    const stateDir = await mkdtemp(join(tmpdir(), 'trainer-'));
    dirs.push(stateDir);
    trainer = startTrainer({ ...env, STATE_DIR: stateDir, TRAIN_MIN_NEW_PAIRS: '0', TRAIN_POLL_MS: '500' });
    const failed = await eventually(async () => {
      const r = await getRun(queued.id);
      return r.status === 'failed' ? r : null;
    }, { timeoutMs: 60_000, what: `the run to be marked failed:\n${trainer.output().slice(-2000)}` });
    assert.match(failed.error ?? '', /trainer stopped before the run finished/);
    assert.equal((await listModelVersions(database.db, { limit: 1000 })).length, versionsBefore, 'no version row from the killed run');
    // The training child dies with its parent, so no checkpoint appears later either.
    await eventually(() => exited(children[0]), { timeoutMs: 30_000, what: 'the training child to exit with its parent' });
    assert.equal(existsSync(join(checkpointDir, `run-${queued.id}`)), false);
    // Both servers kept serving throughout.
    for (const s of servers) assert.equal((await fetch(`${s.url}/health`)).status, 200);
  });
});
