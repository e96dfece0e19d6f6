/**
 * `npm run load` and `npm run bench` as a user runs them: child processes from the repo root, short and
 * small, checked for exit code and the shape of their JSON (numbers present, finite, positive where a
 * count or a rate must be). No figure is compared with a speed: the machine may be busy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LIMIT_MS = 240_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run <script> -- ...args` in the repo root; never rejects on a non-zero exit. */
function npmRun(script: string, args: string[]): Promise<Ran> {
  return new Promise((done, fail) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of ['CHECKPOINT', 'STATE_DIR', 'DATABASE_URL', 'PORT', 'LOG_LEVEL']) delete env[k];
    // Its own process group, so that a run past the limit is ended with everything it started.
    const child = spawn('npm', ['run', script, '--', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), LIMIT_MS);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** The JSON object on the last stdout line (npm's own header lines come before it). */
function lastJson(r: Ran): Record<string, any> {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr.slice(-3000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const positive = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what} = ${x}`);
const nonNegative = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x) && x >= 0, `${what} = ${x}`);

function assertDistribution(d: any, what: string, strictlyPositive = true): void {
  assert.ok(d && typeof d === 'object', `${what} is ${JSON.stringify(d)}`);
  positive(d.n, `${what}.n`);
  for (const k of ['p50', 'p90', 'p99', 'max']) (strictlyPositive ? positive : nonNegative)(d[k], `${what}.${k}`);
  assert.ok(d.p50 <= d.p99 && d.p99 <= d.max, `${what} is not ordered: ${JSON.stringify(d)}`);
}

function assertMachine(m: any): void {
  positive(m.cores, 'machine.cores');
  assert.equal(typeof m.cpu_model, 'string');
  positive(m.total_memory_mb, 'machine.total_memory_mb');
  assert.match(m.node, /^v\d+\./);
  assert.equal(typeof m.tfjs_backend.name, 'string');
}

test('npm run load -- --clients 2 --seconds 3 --json: requests, latencies, tokens/s and memory', { timeout: LIMIT_MS + 10_000 }, async () => {
  const r = lastJson(await npmRun('load', ['--clients', '2', '--seconds', '3', '--json']));
  assert.equal(r.load, 'rlhf-chat');
  assert.equal(r.clients, 2);
  assert.equal(r.seconds, 3);
  assert.equal(r.target.started_here, true);
  assert.match(r.target.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  positive(r.elapsed_s, 'elapsed_s');
  positive(r.requests.completed, 'requests.completed');
  nonNegative(r.requests.failed, 'requests.failed');
  for (const [reason, n] of Object.entries(r.requests.failed_by_reason)) positive(n, `failed_by_reason.${reason}`);
  const failedByReason = Object.values(r.requests.failed_by_reason as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.equal(failedByReason, r.requests.failed);
  for (const kind of ['chat', 'regenerate', 'rating']) {
    nonNegative(r.requests.by_kind[kind].completed, `${kind}.completed`);
    nonNegative(r.requests.by_kind[kind].failed, `${kind}.failed`);
  }
  positive(r.requests.by_kind.chat.completed, 'chat.completed');
  assertDistribution(r.latency_ms.ttft, 'ttft');
  assertDistribution(r.latency_ms.total, 'total');
  positive(r.tokens.completion_tokens, 'completion_tokens');
  positive(r.tokens.tokens_per_s, 'tokens_per_s');
  for (const when of ['start', 'end']) {
    positive(r.memory[when].rss_mb, `memory.${when}.rss_mb`);
    nonNegative(r.memory[when].num_tensors, `memory.${when}.num_tensors`);
  }
  // The engine's tfjs tensors (none once ort serves: the session holds the weights) stay flat.
  assert.equal(r.memory.end.num_tensors, r.memory.start.num_tensors);
  assert.equal(r.inference_engine, process.env.INFERENCE_ENGINE || 'ort');
  positive(r.time.steps, 'time.steps');
  positive(r.time.prefills, 'time.prefills');
});

test('npm run bench -- --only decode,streams,swap,memory --preset tiny: the model alone and a server in the process, with a markdown table', { timeout: LIMIT_MS + 10_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-cli-'));
  try {
    const md = join(dir, 'bench.md');
    const args = ['--only', 'decode,streams,swap,memory', '--preset', 'tiny', '--runs', '1', '--concurrency', '1,2', '--rounds', '1', '--max-new-tokens', '8'];
    const r = lastJson(await npmRun('bench', [...args, '--streams', '2', '--swaps', '1', '--memory-tokens', '100', '--json', '--markdown', md]));
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.sections, ['decode', 'streams', 'swap', 'memory']);
    for (const s of ['train', 'training']) assert.equal(r[s], undefined, `${s} was not asked for`);
    assertMachine(r.machine);
    positive(r.decode.cached_tokens_per_s, 'decode.cached_tokens_per_s');
    positive(r.decode.nocache_tokens_per_s, 'decode.nocache_tokens_per_s');
    positive(r.decode.steps, 'decode.steps');
    assert.equal(r.server_model.preset, 'tiny');
    assert.deepEqual(r.streams.levels.map((l: any) => l.concurrency), [1, 2]);
    for (const l of r.streams.levels) {
      positive(l.tokens_per_s, `streams x${l.concurrency} tokens_per_s`);
      assertDistribution(l.ttft_ms, `streams x${l.concurrency} ttft`);
      assertDistribution(l.inter_token_ms, `streams x${l.concurrency} inter_token`, false);
    }
    assert.ok(r.streams.idle, 'idle latency from concurrency 1');
    assert.equal(r.swap.swaps.length, 1);
    assert.equal(r.swap.swaps[0].status, 200);
    positive(r.swap.swaps[0].activate_ms, 'swap activate_ms');
    for (const k of ['longest_gap_across_swap_ms', 'longest_gap_elsewhere_ms']) assert.ok(r.swap[k] === null || (Number.isFinite(r.swap[k]) && r.swap[k] >= 0), `${k} = ${r.swap[k]}`);
    positive(r.swap.requests.completed, 'swap requests completed');
    nonNegative(r.swap.wrong_version, 'swap wrong_version');
    assert.ok(r.memory.generated_tokens >= 100, `generated ${r.memory.generated_tokens}`);
    for (const when of ['before', 'after']) {
      positive(r.memory[when].rss_mb, `memory.${when}.rss_mb`);
      nonNegative(r.memory[when].num_tensors, `memory.${when}.num_tensors`);
    }
    assert.ok(Number.isInteger(r.memory.num_tensors_delta));
    const table = await readFile(md, 'utf8');
    assert.match(table, /\| section \| figure \| value \|/);
    assert.match(table, /\| decode \| batch 1, KV cache/);
    assert.match(table, /\| streams \| 2 concurrent/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad flags exit 2 naming the flag and what it accepts', { timeout: 60_000 }, async () => {
  const cases: [string, string[], RegExp][] = [
    ['load', ['--clients', '0'], /--clients: expected an integer in \[1, 256\], got '0'/],
    ['load', ['--url', 'http://example.com:8080'], /--url: example\.com is not a loopback address/],
    ['load', ['--seconds', '3601'], /--seconds: expected an integer in \[1, 3600\], got '3601'/],
    ['bench', ['--only', 'decode,nope'], /--only: unknown value 'nope'; expected a comma-separated subset of train, decode, streams, swap, memory, training/],
    ['bench', ['--fast'], /unknown flag --fast; allowed flags: --json, --markdown, --only/],
  ];
  await Promise.all(
    cases.map(async ([script, args, message]) => {
      const r = await npmRun(script, args);
      assert.equal(r.code, 2, `${script} ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message);
    }),
  );
});
