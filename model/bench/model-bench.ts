/**
 * `npm run bench:model -- [--json] [--preset small] [--runs 3]`
 *
 * Throughput of the GPT on the chosen engine, with random token ids on a randomly initialised model
 * (speed does not depend on the weights). Progress goes to stderr; with `--json` the last stdout line
 * is one JSON object, otherwise a small table.
 *
 * Measurements (each a median over `--runs`, after a warm-up):
 * - train_tokens_per_s: one step = tf.variableGrads over maskedCrossEntropy(lmLogits(hidden(x, true)),
 *   y, ones) + Adam applyGradients with an explicit var list, in one tf.tidy; B=16, T=min(128, context).
 * - decode_tokens_per_s: batch 1, prefill a 16-token prompt, then 64 `step` calls (greedy argmax);
 *   tokens/s over the steps only.
 * - decode_nocache_tokens_per_s: batch 1, same prompt, 64 new tokens each from a full forward over the
 *   whole sequence so far (prefill of the sequence, cache discarded).
 * - decode_batch8_tokens_per_s: 8 prompts of 12..19 tokens prefilled together, 64 steps, 8*64/time.
 * When the context cannot hold prompt + 64 new tokens (tiny), fewer steps are run and reported in
 * `decode_steps` / `decode_batch8_steps` and in `deviations`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { parseFlags, parsePreset, UsageError } from '../cli/args.ts';
import { initEngine } from '../backend.ts';
import { argmax } from '../decode/logits.ts';
import { seededRng } from '../decode/rng.ts';
import { countParams, gptConfig, type GPTConfig, type PresetName } from '../gpt/config.ts';
import { GPT } from '../gpt/gpt.ts';
import { maskedCrossEntropy } from '../gpt/loss.ts';

const TRAIN_BATCH = 16;
const TRAIN_CONTEXT = 128;
const PROMPT_LEN = 16;
const NEW_TOKENS = 64;
const BATCH8 = 8;
const BATCH8_PROMPT_MIN = 12; // prompts of 12..19 tokens
const LEARNING_RATE = 1e-4;

const USAGE = 'usage: npm run bench:model -- [--json] [--preset tiny|small|base] [--runs N]';

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

// ---- peak RSS: sampled by a timer and explicitly after every measured step (wasm ops block the loop).
let peakRss = 0;
const sampleRss = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Deterministic random ids, so runs are comparable. */
function idSource(seed: number, vocab: number): (n: number) => number[] {
  const next = seededRng(seed);
  return (n) => Array.from({ length: n }, () => Math.floor(next() * vocab));
}


/** Seconds per training step, one per run, after one warm-up step. */
function benchTrain(model: GPT, cfg: GPTConfig, runs: number, ids: (n: number) => number[]): { seconds: number[]; tokens: number } {
  const B = TRAIN_BATCH;
  const T = Math.min(TRAIN_CONTEXT, cfg.context);
  const vars = model.trainableVariables();
  const optimizer = tf.train.adam(LEARNING_RATE);
  const x = tf.tensor2d(ids(B * T), [B, T], 'int32');
  const y = tf.tensor1d(ids(B * T), 'int32');
  const ones = tf.ones([B * T], 'float32') as tf.Tensor1D;
  const seconds: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now();
      const loss = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => maskedCrossEntropy(model.lmLogits(model.hidden(x, true)), y, ones), vars);
        optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
        return value;
      });
      const lossValue = loss.dataSync()[0];
      loss.dispose();
      const dt = (performance.now() - t0) / 1000;
      sampleRss();
      if (!Number.isFinite(lossValue)) throw new Error(`training loss is ${lossValue}`);
      log(`train ${i === 0 ? 'warm-up' : `run ${i}/${runs}`}: ${dt.toFixed(2)}s/step, loss ${lossValue.toFixed(3)}, ${((B * T) / dt).toFixed(0)} tok/s`);
      if (i > 0) seconds.push(dt);
    }
  } finally {
    optimizer.dispose();
    tf.dispose([x, y, ones]);
  }
  return { seconds, tokens: B * T };
}

/** Prefills `prompts`, then runs `steps` greedy steps; returns the seconds of the steps only. */
async function timeCachedDecode(model: GPT, prompts: number[][], steps: number): Promise<number> {
  let { logits, cache } = await model.prefill(prompts);
  try {
    sampleRss();
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      ({ logits, cache } = await model.step(cache, logits.map(argmax)));
      if (s % 8 === 7) sampleRss();
    }
    return (performance.now() - t0) / 1000;
  } finally {
    cache.dispose();
  }
}

/** Batch 1 without a cache: each new token from a full forward over the sequence so far. */
/**
 * No cache: every new token recomputes the whole sequence so far. It uses `prefill` (the generation
 * forward, with the same kept output projection as the cached path) and throws the cache away, so
 * the two figures differ only by the cache.
 */
async function timeNoCacheDecode(model: GPT, prompt: number[], steps: number): Promise<number> {
  const seq = [...prompt];
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const { logits, cache } = await model.prefill([seq]);
    cache.dispose();
    seq.push(argmax(logits[0]));
    if (s % 8 === 7) sampleRss();
  }
  return (performance.now() - t0) / 1000;
}

interface BenchResult {
  backend: string;
  preset: PresetName;
  params: number;
  train_tokens_per_s: number;
  decode_tokens_per_s: number;
  decode_nocache_tokens_per_s: number;
  decode_batch8_tokens_per_s: number;
  train_step_s: number;
  decode_prompt_tokens: number;
  decode_steps: number;
  decode_batch8_prompt_tokens: [number, number];
  decode_batch8_steps: number;
  peak_rss_mb: number;
  config: {
    vocab_size: number;
    d_model: number;
    n_layers: number;
    n_heads: number;
    context: number;
    batch: number;
    train_seq_len: number;
    dropout: number;
  };
  runs: number;
  cores: number;
  node: string;
  engine: { tf_backend: string; simd: boolean | null };
  tensors_leaked: number;
  wall_s: number;
  /** Where a measurement could not follow its definition (e.g. a context too short), in words. */
  deviations: string[];
}

type Measured = Pick<
  BenchResult,
  | 'backend'
  | 'preset'
  | 'params'
  | 'train_tokens_per_s'
  | 'decode_tokens_per_s'
  | 'decode_nocache_tokens_per_s'
  | 'decode_batch8_tokens_per_s'
  | 'train_step_s'
  | 'decode_prompt_tokens'
  | 'decode_steps'
  | 'decode_batch8_prompt_tokens'
  | 'decode_batch8_steps'
>;

async function bench(preset: PresetName, runs: number): Promise<BenchResult> {
  const engine = await initEngine();
  const timer = setInterval(sampleRss, 50);
  timer.unref();
  sampleRss();
  const cfg = gptConfig(preset);
  const tensorsBefore = tf.memory().numTensors;
  const model = new GPT(cfg);
  const ids = idSource(1234, cfg.vocabSize);
  const deviations: string[] = [];
  const decodeSteps = Math.min(NEW_TOKENS, cfg.context - PROMPT_LEN);
  const batch8MaxPrompt = BATCH8_PROMPT_MIN + BATCH8 - 1;
  const batch8Steps = Math.min(NEW_TOKENS, cfg.context - batch8MaxPrompt);
  if (decodeSteps < NEW_TOKENS) deviations.push(`decode: ${decodeSteps} new tokens instead of ${NEW_TOKENS} (context ${cfg.context} - prompt ${PROMPT_LEN})`);
  if (batch8Steps < NEW_TOKENS) deviations.push(`batch8 decode: ${batch8Steps} steps instead of ${NEW_TOKENS} (context ${cfg.context} - prompt ${batch8MaxPrompt})`);
  const started = performance.now();
  let result: Measured;
  try {
    log(`engine ${engine.name}, preset ${preset} (${countParams(cfg).toLocaleString('en-US')} params), ${runs} run(s), ${availableParallelism()} cores`);

    const train = benchTrain(model, cfg, runs, ids);

    const prompt = ids(PROMPT_LEN);
    const batchPrompts = Array.from({ length: BATCH8 }, (_, b) => ids(BATCH8_PROMPT_MIN + b));
    // Warm-up of the decode paths (first-use allocations), not timed.
    await timeCachedDecode(model, [prompt], 2);
    await timeCachedDecode(model, batchPrompts, 2);
    await timeNoCacheDecode(model, prompt, 2);

    const cached: number[] = [];
    const nocache: number[] = [];
    const batch8: number[] = [];
    for (let r = 1; r <= runs; r++) {
      const s1 = await timeCachedDecode(model, [prompt], decodeSteps);
      cached.push(decodeSteps / s1);
      const s2 = await timeNoCacheDecode(model, prompt, decodeSteps);
      nocache.push(decodeSteps / s2);
      const s3 = await timeCachedDecode(model, batchPrompts, batch8Steps);
      batch8.push((BATCH8 * batch8Steps) / s3);
      log(
        `decode run ${r}/${runs}: cached ${(decodeSteps / s1).toFixed(1)} tok/s, no cache ${(decodeSteps / s2).toFixed(1)} tok/s, ` +
          `batch ${BATCH8} ${((BATCH8 * batch8Steps) / s3).toFixed(1)} tok/s`,
      );
    }

    result = {
      backend: engine.name,
      preset,
      params: countParams(cfg),
      train_tokens_per_s: round(train.tokens / median(train.seconds)),
      decode_tokens_per_s: round(median(cached)),
      decode_nocache_tokens_per_s: round(median(nocache)),
      decode_batch8_tokens_per_s: round(median(batch8)),
      train_step_s: round(median(train.seconds), 3),
      decode_prompt_tokens: PROMPT_LEN,
      decode_steps: decodeSteps,
      decode_batch8_prompt_tokens: [BATCH8_PROMPT_MIN, batch8MaxPrompt],
      decode_batch8_steps: batch8Steps,
    };
  } finally {
    model.dispose();
    clearInterval(timer);
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) throw new Error(`bench leaked ${leaked} tensors`);
  sampleRss();
  return {
    ...result,
    peak_rss_mb: round(peakRss / 2 ** 20),
    config: {
      vocab_size: cfg.vocabSize,
      d_model: cfg.dModel,
      n_layers: cfg.nLayers,
      n_heads: cfg.nHeads,
      context: cfg.context,
      batch: TRAIN_BATCH,
      train_seq_len: Math.min(TRAIN_CONTEXT, cfg.context),
      dropout: cfg.dropout,
    },
    runs,
    cores: availableParallelism(),
    node: process.version,
    engine: { tf_backend: engine.tfBackend, simd: engine.simd ?? null },
    tensors_leaked: leaked,
    wall_s: round((performance.now() - started) / 1000, 1),
    deviations,
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function table(r: BenchResult): string {
  const rows: [string, string][] = [
    ['backend', `${r.backend}`],
    ['preset', `${r.preset} (${r.params.toLocaleString('en-US')} params)`],
    ['train', `${r.train_tokens_per_s} tok/s (B=${TRAIN_BATCH}, ${r.train_step_s}s/step)`],
    ['decode (KV cache)', `${r.decode_tokens_per_s} tok/s`],
    ['decode (no cache)', `${r.decode_nocache_tokens_per_s} tok/s`],
    ['decode (batch 8)', `${r.decode_batch8_tokens_per_s} tok/s aggregate`],
    ['peak RSS', `${r.peak_rss_mb} MB`],
    ['runs / cores / node', `${r.runs} / ${r.cores} / ${r.node}`],
  ];
  for (const d of r.deviations) rows.push(['deviation', d]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

function parse(argv: string[]): { json: boolean; preset: PresetName; runs: number } | 'help' {
  const values = parseFlags(argv, {
    json: { type: 'boolean' },
    preset: { type: 'string' },
    runs: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const preset = parsePreset(values.preset, 'small');
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (values.runs !== undefined && (!/^\d+$/.test(values.runs) || runs < 1 || runs > 100)) {
    throw new UsageError(`--runs: expected an integer in [1, 100], got '${values.runs}'`);
  }
  return { json: Boolean(values.json), preset, runs };
}

async function main(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const result = await bench(args.preset, args.runs);
  log(`done in ${result.wall_s}s`);
  process.stdout.write((args.json ? JSON.stringify(result) : table(result)) + '\n');
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`bench:model: ${message.split('\n')[0]}${err instanceof UsageError ? ' (see --help)' : ''}\n`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
