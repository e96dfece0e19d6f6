import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { backendFromEnv, engineInfo, initEngine } from '../model/backend.ts';
import { countParams, gptConfig, parseGPTConfig, PRESETS } from '../model/gpt/config.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { untrainedTinyModel } from './helpers/tiny-model.ts';

function fullLogits(model: GPT, seq: number[]): number[][] {
  return tf.tidy(() => model.lmLogits(model.hidden(tf.tensor2d([seq], [1, seq.length], 'int32'))).arraySync() as number[][]);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

describe('engine', () => {
  test('the wasm backend is chosen here and logged once, never silently cpu', async () => {
    const lines: string[] = [];
    const info = await initEngine({ log: (l) => lines.push(l) });
    assert.equal(info.name, backendFromEnv() ?? 'wasm');
    assert.equal(tf.getBackend(), info.tfBackend);
    assert.equal(engineInfo()?.name, info.name);
    const again = await initEngine({ log: (l) => lines.push(l) });
    assert.equal(again, info);
    // This file is the first thing in its process to start the engine, so the one line is ours.
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], new RegExp(`^\\[engine\\] tfjs backend ${info.tfBackend} via `));
  });

  test('an unknown TFJS_BACKEND value is refused naming the allowed ones', () => {
    assert.throws(() => backendFromEnv('tpu'), /TFJS_BACKEND=tpu is not one of gpu, node, wasm, cpu/);
  });
});

describe('GPT', () => {
  let model: GPT;
  before(async () => {
    model = await untrainedTinyModel();
  });
  after(() => model.dispose());

  test('presets validate and the small preset has 1-5M parameters', () => {
    for (const p of Object.values(PRESETS)) parseGPTConfig(p);
    const small = countParams(PRESETS.small);
    assert.ok(small > 1e6 && small < 5e6, `small has ${small}`);
    const base = countParams(PRESETS.base);
    assert.ok(base > 25e6 && base < 50e6, `base has ${base}`);
    assert.throws(() => gptConfig('tiny', { nHeads: 3 }), /nHeads: dModel must be divisible by nHeads/);
    assert.throws(() => parseGPTConfig({ ...PRESETS.tiny, extra: 1 }), /invalid GPT config/);
  });

  test('countParams matches the variables created', () => {
    const total = model.trainableVariables().reduce((a, v) => a + v.size, 0);
    assert.equal(total, countParams(model.config));
  });

  test('two instances have distinct variable names', async () => {
    const other = await untrainedTinyModel();
    const names = new Set(model.trainableVariables().map((v) => v.name));
    for (const v of other.trainableVariables()) assert.ok(!names.has(v.name), v.name);
    other.dispose();
  });

  test('causal masking: changing a later token does not change earlier logits', () => {
    const a = [256, 10, 20, 30, 40, 50, 60, 70];
    const b = [...a.slice(0, 5), 99, 98, 97];
    const la = fullLogits(model, a);
    const lb = fullLogits(model, b);
    for (let i = 0; i < 5; i++) assert.ok(maxAbsDiff(la[i], lb[i]) === 0, `position ${i} changed`);
    assert.ok(maxAbsDiff(la[5], lb[5]) > 0, 'the changed position itself must change');
  });

  test('KV-cache logits equal full recompute (1e-4) and yield the same greedy tokens', async () => {
    const prompt = [256, 11, 22, 33, 44];
    // Greedy with the cache.
    let { logits, cache } = await model.prefill([prompt]);
    const cached: number[] = [];
    const seq = [...prompt];
    for (let i = 0; i < 20; i++) {
      const next = argmax(logits[0]);
      cached.push(next);
      seq.push(next);
      ({ logits, cache } = await model.step(cache, [next]));
      const full = fullLogits(model, seq);
      assert.ok(maxAbsDiff(logits[0], full[seq.length - 1]) < 1e-4, `step ${i}`);
    }
    cache.dispose();
    // Greedy without the cache.
    const naive = [...prompt];
    for (let i = 0; i < 20; i++) naive.push(argmax(fullLogits(model, naive)[naive.length - 1]));
    assert.deepEqual(cached, naive.slice(prompt.length));
  });

  test('prefill returns the full-recompute logits at every position', async () => {
    const prompt = [256, 5, 6, 7, 8, 9];
    const r = await model.prefill([prompt], { allLogits: true });
    const full = fullLogits(model, prompt);
    r.all![0].forEach((row, i) => assert.ok(maxAbsDiff(row, full[i]) < 1e-4));
    r.cache.dispose();
  });

  test('batched decode of ragged prompts equals one-by-one decode', async () => {
    const prompts = [[256, 1, 2], [256, 7, 8, 9, 10, 11, 12], [256, 40], [256, 3, 3, 3, 3]];
    const steps = 12;
    const solo: number[][] = [];
    const soloLogits: Float32Array[][] = [];
    for (const p of prompts) {
      let { logits, cache } = await model.prefill([p]);
      const out: number[] = [];
      const rows: Float32Array[] = [logits[0]];
      for (let i = 0; i < steps; i++) {
        const t = argmax(logits[0]);
        out.push(t);
        ({ logits, cache } = await model.step(cache, [t]));
        rows.push(logits[0]);
      }
      cache.dispose();
      solo.push(out);
      soloLogits.push(rows);
    }
    let { logits, cache } = await model.prefill(prompts);
    const batched: number[][] = prompts.map(() => []);
    for (let i = 0; i < steps; i++) {
      logits.forEach((row, b) => assert.ok(maxAbsDiff(row, soloLogits[b][i]) < 1e-4, `seq ${b} step ${i}`));
      const next = logits.map(argmax);
      next.forEach((t, b) => batched[b].push(t));
      ({ logits, cache } = await model.step(cache, next));
    }
    cache.dispose();
    assert.deepEqual(batched, solo);
  });

  test('selectRows forks and reorders cached sequences', async () => {
    const { logits, cache } = await model.prefill([[256, 1, 2], [256, 9]]);
    const forked = cache.selectRows([1, 1, 0]);
    assert.throws(() => cache.assertLive(), /consumed/);
    const r = await model.step(forked, [5, 5, 5]);
    assert.ok(maxAbsDiff(r.logits[0], r.logits[1]) === 0);
    const solo = await model.prefill([[256, 1, 2, 5]]);
    assert.ok(maxAbsDiff(r.logits[2], solo.logits[0]) < 1e-4);
    assert.equal(logits.length, 2);
    r.cache.dispose();
    solo.cache.dispose();
  });

  test('bad inputs are refused with the limit named', async () => {
    await assert.rejects(model.prefill([[256, 99999]]), /token id 99999 outside \[0, 512\)/);
    await assert.rejects(model.prefill([[]]), /prompt 0 is empty/);
    const tooLong = Array.from({ length: model.config.context + 1 }, () => 5);
    await assert.rejects(model.prefill([tooLong]), /65 tokens; context is 64/);
    const full = await model.prefill([Array.from({ length: model.config.context }, () => 5)]);
    await assert.rejects(model.step(full.cache, [1]), /full \(context 64\)/);
    full.cache.dispose();
    assert.throws(() => tf.tidy(() => model.hidden(tf.zeros([1, 65], 'int32') as tf.Tensor2D)), /exceeds context 64/);
  });

  test('loadWeights checks every name and shape before assigning anything', async () => {
    const other = await untrainedTinyModel({ initSeed: 7 });
    const before = model.namedWeights().get('wte')!.dataSync().slice();
    const weights = new Map<string, tf.Tensor>([...other.namedWeights()].map(([k, v]) => [k, v as tf.Tensor]));
    const bad = tf.zeros([3, 3]);
    weights.set('h1/mlp/w_proj', bad);
    assert.throws(() => model.loadWeights(weights), /weight 'h1\/mlp\/w_proj' has shape \[3,3\], model expects \[128,32\]/);
    assert.deepEqual(model.namedWeights().get('wte')!.dataSync(), before);
    bad.dispose();
    other.dispose();
  });

  test('tf.memory().numTensors stays flat over repeated prefill/step and training-path calls', async () => {
    // Warm-up: the first full pass of a length builds and keeps that length's causal mask.
    const warm = await model.prefill([[256, 1]]);
    warm.cache.dispose();
    fullLogits(model, [256, 4, 5]);
    const start = tf.memory().numTensors;
    for (let i = 0; i < 30; i++) {
      let { logits, cache } = await model.prefill([[256, 1, 2], [256, 3]]);
      ({ logits, cache } = await model.step(cache, [argmax(logits[0]), argmax(logits[1])]));
      cache = cache.selectRows([0, 0, 1]);
      ({ cache } = await model.step(cache, [1, 2, 3]));
      cache.dispose();
      fullLogits(model, [256, 4, 5]);
    }
    assert.equal(tf.memory().numTensors, start);
  });
});
