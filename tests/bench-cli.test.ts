/**
 * `npm run load`, `npm run bench` and `npm run bench:serve` as a user runs them: child processes from
 * the repo root, short and small, checked for exit code and the shape of their JSON (numbers present,
 * finite, positive where a count or a rate must be; no failed request, no leaked tensor). No figure
 * is compared with a speed: the machine may be busy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild, without, type Ran } from './helpers/run-child.ts';
import { trainedTinyCheckpoint } from './helpers/tiny-model.ts';

const LIMIT_MS = 240_000;

/** `npm run <script> -- ...args` in the repo root; never rejects on a non-zero exit. */
/** `npm run <script> -- ...args`, in its own process group so that a run past the limit is ended with everything it started. */
const npmRun = (script: string, args: string[]) =>
  runChild('npm', ['run', script, '--', ...args], { env: without('CHECKPOINT', 'STATE_DIR', 'DATABASE_URL', 'PORT', 'LOG_LEVEL'), limitMs: LIMIT_MS, ownGroup: true });

/** The JSON object on the last stdout line (npm's own header lines come before it). */
function lastJson(r: Ran): Record<string, any> {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr.slice(-3000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const positive = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what} = ${x}`);
const nonNegative = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x) && x >= 0, `${what} = ${x}`);

/** No request failed: the README's figures are "0 failed". */
function noFailures(summary: any, what: string): void {
  assert.equal(summary.failed, 0, `${what}: ${JSON.stringify(summary.failed_by_reason)}`);
  assert.deepEqual(summary.failed_by_reason, {}, what);
}

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
  // Two users on a server of their own, with the per-session rate limit lifted: nothing is refused.
  noFailures(r.requests, 'requests');
  for (const kind of ['chat', 'regenerate', 'rating']) {
    nonNegative(r.requests.by_kind[kind].completed, `${kind}.completed`);
    assert.equal(r.requests.by_kind[kind].failed, 0, `${kind}.failed`);
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
      noFailures(l, `streams x${l.concurrency}`);
      positive(l.tokens_per_s, `streams x${l.concurrency} tokens_per_s`);
      assertDistribution(l.ttft_ms, `streams x${l.concurrency} ttft`);
      assertDistribution(l.inter_token_ms, `streams x${l.concurrency} inter_token`, false);
    }
    assert.ok(r.streams.idle, 'idle latency from concurrency 1');
    assert.equal(r.swap.swaps.length, 1);
    assert.equal(r.swap.swaps[0].status, 200);
    positive(r.swap.swaps[0].activate_ms, 'swap activate_ms');
    // Two streams chat back to back through the activation, so one is mid-reply while it loads.
    positive(r.swap.requests_across_swaps, 'swap requests_across_swaps');
    for (const k of ['longest_gap_across_swap_ms', 'longest_gap_elsewhere_ms']) positive(r.swap[k], `swap.${k}`);
    positive(r.swap.requests.completed, 'swap requests completed');
    // "0 failed; 0 stale": a swap drops no request, and none sent after it is answered by the old version.
    noFailures(r.swap.requests, 'swap');
    assert.equal(r.swap.wrong_version, 0, 'swap wrong_version');
    assert.ok(r.memory.generated_tokens >= 100, `generated ${r.memory.generated_tokens}`);
    for (const when of ['before', 'after']) {
      positive(r.memory[when].rss_mb, `memory.${when}.rss_mb`);
      nonNegative(r.memory[when].num_tensors, `memory.${when}.num_tensors`);
    }
    noFailures(r.memory.requests, 'memory');
    // Both readings are taken with the engine idle: whatever a generation allocates it disposes.
    assert.equal(r.memory.num_tensors_delta, 0, `engine tensors ${r.memory.before.num_tensors} -> ${r.memory.after.num_tensors}`);
    const table = await readFile(md, 'utf8');
    assert.match(table, /\| section \| figure \| value \|/);
    assert.match(table, /\| decode \| batch 1, KV cache/);
    assert.match(table, /\| streams \| 2 concurrent/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('npm run bench -- --only train,training --preset tiny: training throughput by threads, and latency while the server trains', { timeout: LIMIT_MS + 10_000 }, async () => {
  const args = ['--only', 'train,training', '--preset', 'tiny', '--runs', '1', '--training-rounds', '2', '--max-new-tokens', '8', '--json'];
  const r = lastJson(await npmRun('bench', args));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(r.sections, ['train', 'training']);
  for (const s of ['decode', 'streams', 'swap', 'memory']) assert.equal(r[s], undefined, `${s} was not asked for`);
  assertMachine(r.machine);
  positive(r.params, 'params');
  positive(r.train.tokens_per_s, 'train.tokens_per_s');
  positive(r.train.step_s, 'train.step_s');
  assert.equal(r.train.batch, 16);
  assert.equal(r.train.seq_len, 64, 'the tiny preset\'s context');
  assert.equal(r.train.runs, 1);
  // 1 and every power of two up to the cores (at most 8).
  const threads = [1, 2, 4, 8].filter((n) => n === 1 || n <= r.machine.cores);
  assert.deepEqual(r.train.data_parallel.map((p: any) => p.threads), threads);
  for (const p of r.train.data_parallel) {
    positive(p.tokens_per_s, `train x${p.threads} tokens_per_s`);
    positive(p.step_s, `train x${p.threads} step_s`);
  }
  // The server starts a real online run (POST /api/admin/train): the section is measured, not skipped.
  const t = r.training;
  assert.equal(t.skipped, undefined, `training was skipped: ${t.skipped}`);
  assert.equal(typeof t.run.id, 'number');
  assert.ok(t.rounds >= 1 && t.rounds <= 2, `rounds ${t.rounds}`);
  assert.equal(t.ended_early, t.rounds < 2);
  for (const [what, summary] of [['idle', t.idle], ['during', t]] as const) {
    noFailures(summary, `training ${what}`);
    positive(summary.completion_tokens, `training ${what} completion_tokens`);
    assertDistribution(summary.ttft_ms, `training ${what} ttft`);
    assertDistribution(summary.inter_token_ms, `training ${what} inter_token`, false);
  }
  assert.equal(t.idle.completed, 2, 'one stream, 2 idle rounds');
  assert.equal(t.completed, t.rounds);
  for (const key of ['ttft', 'inter_token']) {
    for (const p of ['p50', 'p99']) {
      // during / idle. A ratio to an idle figure of 0 (two deltas in one tick) has no value; a during
      // figure of 0 (the same, while training) gives a ratio of 0.
      const idle = t.idle[`${key}_ms`][p];
      const during = t[`${key}_ms`][p];
      if (idle > 0) assert.equal(t.ratio[`${key}_${p}`], Math.round((during / idle) * 100) / 100, `training ratio ${key}_${p}`);
      else assert.equal(t.ratio[`${key}_${p}`], null);
    }
  }
});

test('npm run bench:serve -- --checkpoint DIR --concurrency 1,2 --rounds 1 --json: latency and throughput per level', { timeout: LIMIT_MS + 10_000 }, async () => {
  const checkpoint = await trainedTinyCheckpoint();
  const r = lastJson(await npmRun('bench:serve', ['--checkpoint', checkpoint, '--concurrency', '1,2', '--rounds', '1', '--max-new-tokens', '8', '--json']));
  assert.equal(r.bench, 'serve');
  assert.match(r.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(r.model.checkpoint, checkpoint);
  positive(r.model.params, 'model.params');
  assert.equal(r.model.config.context, 64, 'the tiny model');
  assert.deepEqual([r.max_new_tokens, r.rounds], [8, 1]);
  assert.deepEqual(r.levels.map((l: any) => [l.concurrency, l.streams]), [[1, 1], [2, 2]], 'one measured round of each level');
  for (const l of r.levels) {
    const what = `x${l.concurrency}`;
    assert.ok(l.completion_tokens >= l.streams && l.completion_tokens <= 8 * l.streams, `${what} completion_tokens ${l.completion_tokens}`);
    positive(l.tokens_per_s, `${what} tokens_per_s`);
    positive(l.ttft_ms.p50, `${what} ttft p50`);
    assert.ok(l.ttft_ms.p50 <= l.ttft_ms.p99, `${what} ttft ${JSON.stringify(l.ttft_ms)}`);
    for (const k of ['inter_token_ms', 'stream_ms_per_token']) {
      // NaN (null in JSON) only when no stream had two deltas.
      assert.ok(l[k].p50 === null || (l[k].p50 >= 0 && l[k].p50 <= l[k].p99), `${what} ${k} ${JSON.stringify(l[k])}`);
    }
  }
});

test('bad flags exit 2 naming the flag and what it accepts', { timeout: 240_000 }, async () => {
  const cases: [string, string[], RegExp][] = [
    ['load', ['--clients', '0'], /--clients: expected an integer in \[1, 256\], got '0'/],
    ['load', ['--url', 'http://example.com:8080'], /--url: example\.com is not a loopback address/],
    ['load', ['--seconds', '3601'], /--seconds: expected an integer in \[1, 3600\], got '3601'/],
    ['bench', ['--only', 'decode,nope'], /--only: unknown value 'nope'; expected a comma-separated subset of train, decode, streams, swap, memory, training/],
    ['bench', ['--fast'], /unknown flag --fast; allowed flags: --json, --markdown, --only/],
    ['bench', ['--training-rounds', '0'], /--training-rounds: expected an integer in \[1, 1000\], got '0'/],
    ['bench:serve', ['--concurrency', '1,0'], /--concurrency: expected comma-separated integers in \[1, 64\], got '1,0'/],
    ['bench:serve', ['--rounds', '21'], /--rounds: expected an integer in \[1, 20\], got '21'/],
    ['bench:serve', ['--preset', 'base'], /--preset: unknown value 'base'; expected one of small, tiny/],
    ['bench:serve', ['--url', 'http://example.com:8080'], /--url: example\.com is not a loopback address/],
    ['bench:serve', ['--checkpoint', '/nonexistent/model'], /--checkpoint: \/nonexistent\/model is not a checkpoint directory \(no meta\.json\)/],
    ['bench:serve', ['--fast'], /unknown flag --fast; allowed flags: --json, --checkpoint, --preset/],
  ];
  await Promise.all(
    cases.map(async ([script, args, message]) => {
      const r = await npmRun(script, args);
      assert.equal(r.code, 2, `${script} ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message);
    }),
  );
});
