/**
 * The training step's maths: loss and every variable's gradient of the GPT's training path
 * (custom-gradient ops tuned for wasm) against a plain reference written here with standard tf ops
 * and tfjs's own autodiff only, and no tensor leak over repeated optimizer steps.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../model/backend.ts';
import { gptConfig } from '../model/gpt/config.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { maskedCrossEntropy } from '../model/gpt/loss.ts';
import type { GPTParams } from '../model/gpt/params.ts';

const BATCH = 2;
const T = 12; // not a multiple of the tile sizes the fast transposes prefer
const CONFIG = { vocabSize: 60, context: 16, dModel: 32, nLayers: 2, nHeads: 4, dropout: 0, initSeed: 7 };

/** A fixed pseudo-random stream, so the test data is the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** LayerNorm by the textbook. x: (N, D), gamma/beta: (D) -> (N, D) */
function refLayerNorm(x: tf.Tensor2D, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor2D {
  const mean = tf.mean(x, -1, true); // (N, 1)
  const centered = tf.sub(x, mean); // (N, D)
  const variance = tf.mean(tf.square(centered), -1, true); // (N, 1)
  return tf.add(tf.mul(tf.div(centered, tf.sqrt(tf.add(variance, 1e-5))), gamma), beta) as tf.Tensor2D; // (N, D)
}

/** GELU, tanh form, as GPT-2 writes it. x: (N, F) -> (N, F) */
function refGelu(x: tf.Tensor2D): tf.Tensor2D {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI)); // (N, F)
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as tf.Tensor2D; // (N, F)
}

/** Float one-hot rows (an int32 oneHot cast: a float32 oneHot is wrong on wasm). ids: (N) -> (N, depth) */
function oneHotRows(ids: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(ids, depth), 'float32') as tf.Tensor2D; // (N, depth)
}

/**
 * The same model and loss in plain tf ops: one-hot matMul embeddings, per (sequence, head) attention
 * with tf.matMul and tf.softmax, tfjs's automatic gradients throughout.
 * ids/targets: (B*T) int32, weights: (B*T) -> scalar
 */
function referenceLoss(p: GPTParams, ids: tf.Tensor1D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const { vocabSize: V, dModel: D, nHeads: H } = CONFIG;
  const hs = D / H;
  const n = BATCH * T;
  const positions = tf.tensor1d(Array.from({ length: n }, (_, i) => i % T), 'int32'); // (N)
  let x = tf.add(
    tf.matMul(oneHotRows(ids, V), p.tokenEmbedding), // (N, V) @ (V, D)
    tf.matMul(oneHotRows(positions, CONFIG.context), p.positionEmbedding), // (N, ctx) @ (ctx, D)
  ) as tf.Tensor2D; // (N, D)
  const mask = tf.tensor2d(Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? -1e9 : 0)), [T, T]); // (T, T)
  for (const b of p.blocks) {
    const h1 = refLayerNorm(x, b.ln1Gamma, b.ln1Beta); // (N, D)
    const qkv = tf.add(tf.matMul(h1, b.wQkv), b.bQkv) as tf.Tensor2D; // (N, 3D)
    const sequences: tf.Tensor2D[] = [];
    for (let s = 0; s < BATCH; s++) {
      const heads: tf.Tensor2D[] = [];
      for (let h = 0; h < H; h++) {
        const q = tf.slice(qkv, [s * T, h * hs], [T, hs]); // (T, hs)
        const k = tf.slice(qkv, [s * T, D + h * hs], [T, hs]); // (T, hs)
        const v = tf.slice(qkv, [s * T, 2 * D + h * hs], [T, hs]); // (T, hs)
        const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(hs)), mask); // (T, T)
        heads.push(tf.matMul(tf.softmax(scores), v)); // (T, hs)
      }
      sequences.push(tf.concat(heads, 1)); // (T, D)
    }
    const attn = tf.concat(sequences, 0); // (N, D)
    x = tf.add(x, tf.add(tf.matMul(attn, b.wAttnOut), b.bAttnOut)) as tf.Tensor2D; // (N, D)
    const h2 = refLayerNorm(x, b.ln2Gamma, b.ln2Beta); // (N, D)
    const fc = refGelu(tf.add(tf.matMul(h2, b.wFc), b.bFc) as tf.Tensor2D); // (N, 4D)
    x = tf.add(x, tf.add(tf.matMul(fc, b.wProj), b.bProj)) as tf.Tensor2D; // (N, D)
  }
  const hidden = refLayerNorm(x, p.lnFGamma, p.lnFBeta); // (N, D)
  const logits = tf.matMul(hidden, p.tokenEmbedding, false, true); // (N, D) @ (V, D)^T
  const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), oneHotRows(targets, V)), -1)); // (N)
  return tf.div(tf.sum(tf.mul(nll, weights)), tf.sum(weights)) as tf.Scalar;
}

describe('GPT training-path gradients', () => {
  let model: GPT;
  let ids: tf.Tensor2D;
  let targets: tf.Tensor1D;
  let weights: tf.Tensor1D;

  before(async () => {
    await initEngine();
    model = new GPT(gptConfig('tiny', CONFIG));
    // Every weight random and away from its initial value (LayerNorm 1/0, biases 0), so that no
    // gradient term is hidden by a zero or a one.
    const rand = lcg(11);
    for (const v of model.trainableVariables()) {
      v.assign(tf.tidy(() => tf.add(v, tf.mul(tf.tensor(Float32Array.from({ length: v.size }, () => rand() - 0.5), v.shape), 0.2))));
    }
    const n = BATCH * T;
    ids = tf.tensor2d(Int32Array.from({ length: n }, () => Math.floor(rand() * CONFIG.vocabSize)), [BATCH, T], 'int32');
    targets = tf.tensor1d(Int32Array.from({ length: n }, () => Math.floor(rand() * CONFIG.vocabSize)), 'int32');
    weights = tf.tensor1d(Float32Array.from({ length: n }, (_, i) => (i % 5 === 3 ? 0 : 1 + (i % 3)))); // masked and weighted positions
  });

  test('loss and every gradient equal a plain-tf reference (relative 1e-4)', () => {
    const vars = model.trainableVariables();
    const fast = tf.variableGrads(() => maskedCrossEntropy(model.lmLogits(model.hidden(ids, true)), targets, weights), vars);
    const flatIds = tf.reshape(ids, [BATCH * T]) as tf.Tensor1D;
    const ref = tf.variableGrads(() => referenceLoss(model.params, flatIds, targets, weights), vars);
    const loss = fast.value.dataSync()[0];
    const refLoss = ref.value.dataSync()[0];
    assert.ok(Math.abs(loss - refLoss) <= 1e-4 * Math.abs(refLoss), `loss ${loss} vs reference ${refLoss}`);
    assert.equal(Object.keys(fast.grads).length, vars.length, 'a gradient for every variable');
    for (const v of vars) {
      const g = fast.grads[v.name].dataSync();
      const r = ref.grads[v.name].dataSync();
      let scale = 0;
      let err = 0;
      for (let i = 0; i < r.length; i++) {
        scale = Math.max(scale, Math.abs(r[i]));
        err = Math.max(err, Math.abs(g[i] - r[i]));
      }
      assert.ok(scale > 0, `${v.name}: reference gradient is all zero, the test would prove nothing`);
      assert.ok(err <= 1e-4 * scale, `${v.name}: max |grad - reference| ${err.toExponential(2)} > 1e-4 * ${scale.toExponential(2)}`);
    }
    tf.dispose([fast.value, ref.value, flatIds, ...Object.values(fast.grads), ...Object.values(ref.grads)]);
  });

  test('tf.memory().numTensors is flat over 20 optimizer steps', () => {
    const vars = model.trainableVariables();
    const opt = tf.train.adam(1e-3);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => maskedCrossEntropy(model.lmLogits(model.hidden(ids, true)), targets, weights), vars);
        opt.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
        return value.dataSync()[0];
      });
    const first = step(); // creates the optimizer's slots and the model's kept causal mask
    const start = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 20; i++) last = step();
    assert.equal(tf.memory().numTensors, start);
    assert.ok(Number.isFinite(last) && last < first, `loss went from ${first} to ${last}`);
    opt.dispose();
  });
});
