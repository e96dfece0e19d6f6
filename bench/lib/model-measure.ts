/**
 * The model's throughput measurements as functions, shared by `bench:model` (model-bench.ts) and
 * `npm run bench` (bench/bench-all.ts). Random token ids on a randomly initialised model: speed
 * does not depend on the weights.
 *
 * - train: one step = tf.variableGrads over maskedCrossEntropy(lmLogits(hidden(x, true)), y, ones) +
 *   Adam applyGradients with an explicit var list, in one tf.tidy; B=16, T=min(128, context).
 * - cached decode: batch 1 (or a batch of prompts), prefill, then greedy `step` calls; timed over the
 *   steps only.
 * - no-cache decode: batch 1, each new token from `prefill` over the whole sequence so far (the cache
 *   thrown away), so the two figures differ only by the cache.
 */
import * as tf from '@tensorflow/tfjs-core';
import { argmax } from '../../model/decode/logits.ts';
import { seededRng } from '../../model/decode/rng.ts';
import type { GPTConfig } from '../../model/gpt/config.ts';
import type { GPT } from '../../model/gpt/gpt.ts';
import { maskedCrossEntropy } from '../../model/gpt/loss.ts';

export const TRAIN_BATCH = 16;
export const TRAIN_CONTEXT = 128;
const PROMPT_LEN = 16;
const NEW_TOKENS = 64;
const BATCH8 = 8;
const BATCH8_PROMPT_MIN = 12; // prompts of 12..19 tokens
const LEARNING_RATE = 1e-4;

type Log = (line: string) => void;

// ---- peak RSS: sampled by the caller's timer and explicitly after every measured step (wasm ops block
// the event loop, so a timer alone would miss the peaks).
let peakRss = 0;
export const sampleRss = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
export const peakRssBytes = (): number => peakRss;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Deterministic random ids, so runs are comparable. */
export function idSource(seed: number, vocab: number): (n: number) => number[] {
  const next = seededRng(seed);
  return (n) => Array.from({ length: n }, () => Math.floor(next() * vocab));
}

/** Seconds per training step, one per run, after one warm-up step. */
function benchTrain(model: GPT, cfg: GPTConfig, runs: number, ids: (n: number) => number[], log: Log = () => {}): { seconds: number[]; tokens: number } {
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

export interface TrainFigures {
  tokens_per_s: number;
  step_s: number;
  batch: number;
  seq_len: number;
}

/** Median training throughput over `runs` steps (after a warm-up step). */
export function measureTrain(model: GPT, cfg: GPTConfig, runs: number, ids: (n: number) => number[], log: Log = () => {}): TrainFigures {
  const train = benchTrain(model, cfg, runs, ids, log);
  return {
    tokens_per_s: round(train.tokens / median(train.seconds)),
    step_s: round(median(train.seconds), 3),
    batch: TRAIN_BATCH,
    seq_len: Math.min(TRAIN_CONTEXT, cfg.context),
  };
}

export interface DecodeFigures {
  /** Batch 1 with the KV cache. */
  cached_tokens_per_s: number;
  /** Batch 1, full recompute per token. */
  nocache_tokens_per_s: number;
  /** Aggregate over a batch of 8 with the cache; absent when not asked for. */
  batch8_tokens_per_s?: number;
  prompt_tokens: number;
  steps: number;
  batch8_prompt_tokens?: [number, number];
  batch8_steps?: number;
  /** Where a measurement could not follow its definition (a context too short), in words. */
  deviations: string[];
}

/** Medians over `runs` of the decode paths (after an untimed warm-up of each). */
export async function measureDecode(
  model: GPT,
  cfg: GPTConfig,
  runs: number,
  ids: (n: number) => number[],
  { batch8 = true, log = () => {} }: { batch8?: boolean; log?: Log } = {},
): Promise<DecodeFigures> {
  const deviations: string[] = [];
  const decodeSteps = Math.min(NEW_TOKENS, cfg.context - PROMPT_LEN);
  const batch8MaxPrompt = BATCH8_PROMPT_MIN + BATCH8 - 1;
  const batch8Steps = Math.min(NEW_TOKENS, cfg.context - batch8MaxPrompt);
  if (decodeSteps < NEW_TOKENS) deviations.push(`decode: ${decodeSteps} new tokens instead of ${NEW_TOKENS} (context ${cfg.context} - prompt ${PROMPT_LEN})`);
  if (batch8 && batch8Steps < NEW_TOKENS) deviations.push(`batch8 decode: ${batch8Steps} steps instead of ${NEW_TOKENS} (context ${cfg.context} - prompt ${batch8MaxPrompt})`);

  const prompt = ids(PROMPT_LEN);
  const batchPrompts = Array.from({ length: BATCH8 }, (_, b) => ids(BATCH8_PROMPT_MIN + b));
  // Warm-up of the decode paths (first-use allocations), not timed.
  await timeCachedDecode(model, [prompt], 2);
  if (batch8) await timeCachedDecode(model, batchPrompts, 2);
  await timeNoCacheDecode(model, prompt, 2);

  const cached: number[] = [];
  const nocache: number[] = [];
  const batched: number[] = [];
  for (let r = 1; r <= runs; r++) {
    const s1 = await timeCachedDecode(model, [prompt], decodeSteps);
    cached.push(decodeSteps / s1);
    const s2 = await timeNoCacheDecode(model, prompt, decodeSteps);
    nocache.push(decodeSteps / s2);
    let line = `decode run ${r}/${runs}: cached ${(decodeSteps / s1).toFixed(1)} tok/s, no cache ${(decodeSteps / s2).toFixed(1)} tok/s`;
    if (batch8) {
      const s3 = await timeCachedDecode(model, batchPrompts, batch8Steps);
      batched.push((BATCH8 * batch8Steps) / s3);
      line += `, batch ${BATCH8} ${((BATCH8 * batch8Steps) / s3).toFixed(1)} tok/s`;
    }
    log(line);
  }
  return {
    cached_tokens_per_s: round(median(cached)),
    nocache_tokens_per_s: round(median(nocache)),
    ...(batch8 && {
      batch8_tokens_per_s: round(median(batched)),
      batch8_prompt_tokens: [BATCH8_PROMPT_MIN, batch8MaxPrompt] as [number, number],
      batch8_steps: batch8Steps,
    }),
    prompt_tokens: PROMPT_LEN,
    steps: decodeSteps,
    deviations,
  };
}
