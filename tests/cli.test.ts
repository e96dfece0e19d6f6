/**
 * The command-line tools as a user runs them: real processes (`node --import tsx model/cli/...`) from
 * the repo root, checked by exit code, stdout and stderr.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initEngine } from '../model/backend.ts';
import { NoCheckpointError, resolveDefaultCheckpoint } from '../model/checkpoint/default-checkpoint.ts';
import { generateReply } from '../model/decode/chat-reply.ts';
import { loadModel, type LoadedModel } from '../model/checkpoint/gpt-checkpoint.ts';
import type { ChatMessage } from '../model/tokenizer/index.ts';
import { runTs, without, type Ran } from './helpers/run-child.ts';


/** A CLI of this project; `env` on top of the runner's, without its checkpoint, state and backend choices. */
const runTool = (script: string, args: string[], env: Record<string, string | undefined> = {}) =>
  runTs(script, args, { env: { ...without('CHECKPOINT', 'STATE_DIR', 'TFJS_BACKEND'), ...env }, limitMs: 60_000 });

const generate = (args: string[], env?: Record<string, string | undefined>) => runTool('model/cli/generate.ts', args, env);

/** The error line of a failed CLI: the last stderr line, which must be short (no wasm glue dump). */
function errorLine(r: Ran): string {
  const lines = r.stderr.trimEnd().split('\n');
  assert.ok(r.stderr.length < 2000, `stderr is too long:\n${r.stderr.slice(0, 500)}`);
  return lines[lines.length - 1];
}

let root = '';
let ckpt = '';
let loaded: LoadedModel | null = null;

/** The reply the same checkpoint gives in this process: what the CLI must print, and nothing else. */
async function expectedReply(messages: ChatMessage[], options: Record<string, unknown>): Promise<string> {
  if (!loaded) {
    await initEngine({ log: () => {} });
    loaded = await loadModel(ckpt);
  }
  for await (const ev of generateReply(loaded.model, loaded.tokenizer, messages, options)) {
    if (ev.type === 'done') return ev.text;
  }
  throw new Error('no done event');
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'cli-test-'));
  // Default --out: $STATE_DIR/models/init-tiny.
  const r = await runTool('model/cli/init-model.ts', ['--preset', 'tiny', '--seed', '7'], { STATE_DIR: root });
  assert.equal(r.code, 0, r.stderr);
  ckpt = join(root, 'models', 'init-tiny');
  assert.equal(r.stdout, resolve(ckpt) + '\n', 'init-model prints only the checkpoint path');
  const meta = JSON.parse(await readFile(join(ckpt, 'meta.json'), 'utf8'));
  assert.equal(meta.kind, 'policy');
  assert.equal(meta.step, 0);
  assert.equal(meta.extra.note, 'randomly initialised');
  assert.equal(meta.config.vocabSize, 512);
  assert.equal(meta.config.initSeed, 7);
});

after(async () => {
  loaded?.model.dispose();
  await rm(root, { recursive: true, force: true });
});

test('generate greedy: stdout is exactly the reply and a newline; --stream prints the same', async () => {
  const prompt = 'how are you ?';
  // $CHECKPOINT picks the checkpoint when --checkpoint is absent.
  const r = await generate(['--prompt', prompt, '--max-new-tokens', '12', '--no-repeat-ngram-size', '1'], { CHECKPOINT: ckpt });
  assert.equal(r.code, 0, r.stderr);
  const want = await expectedReply([{ role: 'user', content: prompt }], { max_new_tokens: 12, no_repeat_ngram_size: 1 });
  assert.ok(want.length > 0, 'the banned repeats make the random model print something');
  assert.equal(r.stdout, want + '\n');
  assert.match(r.stderr, /\[engine\]/, 'logs go to stderr');
  const s = await generate(['--checkpoint', ckpt, '--prompt', prompt, '--max-new-tokens', '12', '--no-repeat-ngram-size', '1', '--stream']);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout, r.stdout);
});

test('generate beam_search with penalties', async () => {
  const prompt = 'how are you ?';
  const r = await generate([
    '--checkpoint', ckpt, '--prompt', prompt, '--system', 'be brief',
    '--strategy', 'beam_search', '--beam-width', '5', '--repetition-penalty', '1.2', '--max-new-tokens', '10',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const want = await expectedReply(
    [{ role: 'system', content: 'be brief' }, { role: 'user', content: prompt }],
    { strategy: 'beam_search', beam_width: 5, repetition_penalty: 1.2, max_new_tokens: 10 },
  );
  assert.equal(r.stdout, want + '\n');
  assert.match(r.stderr, /beam_search/);
});

test('generate: bad option values and flags exit 2 with a one-line message naming them', async () => {
  const [zero, notNum, unknown, strategy] = await Promise.all([
    generate(['--checkpoint', ckpt, '--prompt', 'hi', '--beam-width', '0']),
    generate(['--checkpoint', ckpt, '--prompt', 'hi', '--beam-width', 'abc']),
    generate(['--checkpoint', ckpt, '--prompt', 'hi', '--bogus-flag', '1']),
    generate(['--checkpoint', ckpt, '--prompt', 'hi', '--strategy', 'nope']),
  ]);
  assert.equal(zero.code, 2);
  assert.match(errorLine(zero), /--beam-width.*beam_width/);
  assert.equal(zero.stdout, '');
  assert.equal(notNum.code, 2);
  assert.match(errorLine(notNum), /--beam-width.*'abc'/);
  assert.equal(unknown.code, 2);
  assert.match(errorLine(unknown), /--bogus-flag/);
  assert.equal(strategy.code, 2);
  assert.match(errorLine(strategy), /strategy/);
});

test('generate: a missing checkpoint exits 1 with a clear message', async () => {
  const missing = join(root, 'no-such-checkpoint');
  const r = await generate(['--checkpoint', missing, '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const line = errorLine(r);
  assert.ok(line.includes(missing), line);
  assert.match(line, /not a checkpoint directory/);
});

test('generate: corrupted model.safetensors exits 1 mentioning sha256', async () => {
  const bad = join(root, 'corrupt');
  await cp(ckpt, bad, { recursive: true });
  const file = join(bad, 'model.safetensors');
  const bytes = await readFile(file);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(file, bytes);
  const r = await generate(['--checkpoint', bad, '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(errorLine(r), /sha256/);
});

test('default checkpoint: $CHECKPOINT, models/default/policy, $STATE_DIR/models/init-tiny, else a hint', async () => {
  const cwd = join(root, 'cwd');
  await mkdir(cwd, { recursive: true });
  const state = join(root, 'state');
  assert.throws(() => resolveDefaultCheckpoint({ env: { STATE_DIR: state }, cwd }), (err: unknown) => {
    assert.ok(err instanceof NoCheckpointError);
    assert.match(err.message, /npm run init-model -- --preset tiny/);
    return true;
  });
  assert.throws(() => resolveDefaultCheckpoint({ env: { CHECKPOINT: 'nope' }, cwd }), /CHECKPOINT=nope/);
  await mkdir(join(state, 'models', 'init-tiny'), { recursive: true });
  assert.deepEqual(resolveDefaultCheckpoint({ env: { STATE_DIR: state }, cwd }), { dir: join(state, 'models', 'init-tiny'), source: 'state' });
  await mkdir(join(cwd, 'models', 'default', 'policy'), { recursive: true });
  assert.deepEqual(resolveDefaultCheckpoint({ env: { STATE_DIR: state }, cwd }), { dir: join(cwd, 'models', 'default', 'policy'), source: 'models/default' });
  assert.deepEqual(resolveDefaultCheckpoint({ env: { CHECKPOINT: ckpt }, cwd }), { dir: resolve(ckpt), source: 'env' });
});

test('bench:model --preset tiny --runs 1 --json: last stdout line is the result', async () => {
  const r = await runTool('bench/model-bench.ts', ['--preset', 'tiny', '--runs', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const result = JSON.parse(lines[lines.length - 1]);
  assert.equal(result.preset, 'tiny');
  assert.equal(typeof result.backend, 'string');
  assert.equal(typeof result.node, 'string');
  for (const key of ['params', 'train_tokens_per_s', 'decode_tokens_per_s', 'decode_nocache_tokens_per_s', 'decode_batch8_tokens_per_s', 'peak_rss_mb', 'runs', 'cores']) {
    assert.ok(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`);
  }
  for (const key of ['vocab_size', 'd_model', 'n_layers', 'n_heads', 'context', 'batch']) {
    assert.ok(Number.isFinite(result.config[key]) && result.config[key] > 0, `config.${key} = ${result.config[key]}`);
  }
  assert.equal(result.runs, 1);
  assert.equal(result.tensors_leaked, 0);
  // Decode figures are the serving engine's; tfjs's come from the same run.
  assert.equal(result.inference_engine.name, process.env.INFERENCE_ENGINE || 'ort');
  for (const key of ['decode_tokens_per_s', 'decode_nocache_tokens_per_s', 'decode_batch8_tokens_per_s', 'prefill_16_ms', 'prefill_100_ms']) {
    assert.ok(Number.isFinite(result.tfjs[key]) && result.tfjs[key] > 0, `tfjs.${key} = ${result.tfjs[key]}`);
  }
  if (result.inference_engine.name === 'ort') {
    assert.deepEqual(result.ort_threads.map((t: { threads: number }) => t.threads), [1, 2]);
    for (const t of result.ort_threads) assert.ok(t.decode_tokens_per_s > 0 && t.decode_batch8_tokens_per_s > 0, JSON.stringify(t));
  }
});

test('npm run trainer: without DATABASE_URL or with bad settings it exits 2 naming each problem', async () => {
  const none = await runTool('trainer/online/trainer-main.ts', [], { DATABASE_URL: undefined });
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /DATABASE_URL=null: is required/);
  const bad = await runTool('trainer/online/trainer-main.ts', [], {
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    TRAIN_INTERVAL: 'soon',
    TRAIN_CONFIG: JSON.stringify({ ppo: { iterations: 0 }, nope: 1 }),
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /TRAIN_INTERVAL="soon": must be a duration/);
  const config = await runTool('trainer/online/trainer-main.ts', [], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', TRAIN_CONFIG: JSON.stringify({ ppo: { iterations: 0 }, nope: 1 }) });
  assert.equal(config.code, 2, config.stderr);
  assert.match(config.stderr, /TRAIN_CONFIG: .*nope/);
  assert.match(config.stderr, /ppo\.iterations/);
});
