/**
 * Multi-head causal self-attention in two layouts that compute the same function:
 *
 * - `attentionFull` (training, scoring): every sequence starts at position 0, no padding on the left.
 *   Batched matMul is slow on wasm (~2 GFLOP/s), so the (batch, head) pairs are split into plain 2-D
 *   matMuls (`matMul2d`, whose gradient is also plain 2-D). tf.split/concat are used rather than slice
 *   because their gradients are a single concat/split, where slice's gradient pads a full-size tensor.
 * - `attentionCached` (generation): queries for the new tokens only, keys/values appended to a cache,
 *   left-padded ragged batches masked per key. Forward only, so one batched matMul per product: the
 *   new-token chunk is small and one op beats B*H small ones.
 */
import * as tf from '@tensorflow/tfjs-core';
import { matMul2d } from './ops.ts';

/** tf.split, except that a split into one piece is the tensor itself (tfjs's SplitV gradient breaks on it). */
function splitInto(x: tf.Tensor2D, pieces: number, axis: number): tf.Tensor2D[] {
  return pieces === 1 ? [x] : (tf.split(x, pieces, axis) as tf.Tensor2D[]);
}

/**
 * q, k, v split out of the fused projection.
 * qkv: (B*T, 3D) -> per head and sequence, (T, hs) blocks: result[part][b][h]
 */
function splitHeads(qkv: tf.Tensor2D, batch: number, nHeads: number): tf.Tensor2D[][][] {
  const columns = splitInto(qkv, 3 * nHeads, 1); // 3H x (B*T, hs)
  const byPart: tf.Tensor2D[][][] = [[], [], []];
  for (let part = 0; part < 3; part++) {
    for (let h = 0; h < nHeads; h++) {
      const rows = splitInto(columns[part * nHeads + h], batch, 0); // B x (T, hs)
      rows.forEach((block, b) => {
        (byPart[part][b] ??= [])[h] = block;
      });
    }
  }
  return byPart;
}

/**
 * Causal attention over whole sequences.
 * qkv: (B*T, 3D), causalBias: (T, T) with 0 on/below the diagonal and a large negative above -> (B*T, D)
 */
export function attentionFull(
  qkv: tf.Tensor2D,
  batch: number,
  nHeads: number,
  causalBias: tf.Tensor2D,
): tf.Tensor2D {
  const [q, k, v] = splitHeads(qkv, batch, nHeads);
  const headSize = qkv.shape[1] / 3 / nHeads;
  const scale = 1 / Math.sqrt(headSize);
  const perSequence: tf.Tensor2D[] = [];
  for (let b = 0; b < batch; b++) {
    const heads: tf.Tensor2D[] = [];
    for (let h = 0; h < nHeads; h++) {
      const scores = tf.add(tf.mul(matMul2d(q[b][h], tf.transpose(k[b][h])), scale), causalBias); // (T, T)
      const probs = tf.softmax(scores) as tf.Tensor2D; // (T, T)
      heads.push(matMul2d(probs, v[b][h])); // (T, hs)
    }
    perSequence.push(heads.length === 1 ? heads[0] : tf.concat(heads, 1)); // (T, D)
  }
  return perSequence.length === 1 ? perSequence[0] : tf.concat(perSequence, 0); // (B*T, D)
}

/** (T, T) additive mask: 0 where key j <= query i, -1e9 above the diagonal. */
export function causalBiasMatrix(t: number): tf.Tensor2D {
  const data = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = -1e9;
  return tf.tensor2d(data, [t, t]);
}

export interface LayerCache {
  keysT: tf.Tensor4D; // (B, H, hs, Tc): keys stored transposed so q @ keysT needs no transpose
  values: tf.Tensor4D; // (B, H, Tc, hs)
}

/**
 * Attention for a chunk of new tokens against the cache (which already holds earlier columns).
 * qkv: (B*Tn, 3D); bias: (B, 1, Tn, Tc+Tn) additive mask (causal + key padding)
 * -> output (B*Tn, D) and the layer cache extended by Tn columns.
 */
export function attentionCached(
  qkv: tf.Tensor2D,
  batch: number,
  nHeads: number,
  past: LayerCache | null,
  bias: tf.Tensor4D,
): { out: tf.Tensor2D; cache: LayerCache } {
  const d = qkv.shape[1] / 3;
  const hs = d / nHeads;
  const tn = qkv.shape[0] / batch;
  const split = tf.transpose(tf.reshape(qkv, [batch, tn, 3, nHeads, hs]), [2, 0, 3, 1, 4]); // (3, B, H, Tn, hs)
  const [q, k, v] = tf.unstack(split) as tf.Tensor4D[]; // each (B, H, Tn, hs)
  const kT = tf.transpose(k, [0, 1, 3, 2]); // (B, H, hs, Tn)
  const keysT = past ? tf.concat([past.keysT, kT], 3) : kT; // (B, H, hs, Tc+Tn)
  const values = past ? tf.concat([past.values, v], 2) : v; // (B, H, Tc+Tn, hs)
  const scores = tf.add(tf.mul(tf.matMul(q, keysT), 1 / Math.sqrt(hs)), bias); // (B, H, Tn, Tc+Tn)
  const probs = tf.softmax(scores); // (B, H, Tn, Tc+Tn)
  const heads = tf.matMul(probs, values); // (B, H, Tn, hs)
  const out = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), [batch * tn, d]); // (B*Tn, D)
  return { out: out as tf.Tensor2D, cache: { keysT: keysT as tf.Tensor4D, values: values as tf.Tensor4D } };
}
