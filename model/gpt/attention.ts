/**
 * Multi-head causal self-attention in two layouts that compute the same function:
 *
 * - `attentionFull` (training, scoring): every sequence starts at position 0, no padding on the left.
 *   Batched matMul is slow on wasm (~2 GFLOP/s), so each (sequence, head) pair gets plain 2-D matMuls
 *   (XNNPACK, ~30 GFLOP/s). The whole layer is one custom-gradient node: the tape would otherwise copy
 *   every saved operand of ~1,000 small ops per layer, and its automatic gradients use transposed or
 *   batched matMuls. Per-pair blocks are cut with gatherND from stacked layouts made by one 4-D
 *   transpose each (Slice/SplitV on wasm copy the whole input per piece, and a concat along columns
 *   loops over rows in JS; a concat along rows and a 4-D transpose are cheap). Elementwise work
 *   (scale, mask, softmax and its backward) runs once on all pairs stacked.
 * - `attentionCached` (generation): queries for the new tokens only, keys/values appended to a cache,
 *   left-padded ragged batches masked per key. Forward only, so one batched matMul per product: the
 *   new-token chunk is small and one op beats B*H small ones.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * (1) int32 tensors 0..n-1: gatherND indices that pick one block of a stacked (n, r, c) tensor. An
 * index of shape (1) makes gatherND return the (r, c) block itself, with no reshape op after it.
 */
function blockIndices(n: number): tf.Tensor1D[] {
  return Array.from({ length: n }, (_, i) => tf.tensor1d(Int32Array.of(i), 'int32'));
}

/** The per-pair blocks of one stack. stack: (n, r, c) -> n x (r, c) */
function blocks(stack: tf.Tensor3D, indices: tf.Tensor1D[]): tf.Tensor2D[] {
  return indices.map((index) => tf.gatherND(stack, index) as tf.Tensor2D); // (r, c)
}

/**
 * Per-matrix transpose of a stack, as a 4-D transpose (the 3-D kernel is ~3x slower).
 * x: (n, r, c) -> (n, c, r)
 */
function transposeStack(x: tf.Tensor3D): tf.Tensor3D {
  const [n, r, c] = x.shape;
  const f = c % 32 === 0 && c > 32 ? 32 : 1;
  const x4 = tf.reshape(x, [n, r, c / f, f]); // (n, r, c/f, f)
  return tf.reshape(tf.transpose(x4, [0, 2, 3, 1]), [n, c, r]); // (n, c/f, f, r) = (n, c, r)
}

/**
 * Causal attention over whole sequences.
 * qkv: (B*T, 3D) with columns [q | k | v], each split into H heads of hs = D/H;
 * causalBias: (T, T) with 0 on/below the diagonal and a large negative above -> (B*T, D)
 */
export function attentionFull(
  qkv: tf.Tensor2D,
  batch: number,
  nHeads: number,
  causalBias: tf.Tensor2D,
): tf.Tensor2D {
  const [n, width] = qkv.shape;
  const t = n / batch;
  const d = width / 3;
  const hs = d / nHeads;
  const pairs = nHeads * batch; // pair p = h * B + b
  const scale = 1 / Math.sqrt(hs);

  const node = (tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const x4 = tf.reshape(x, [batch, t, 3 * nHeads, hs]); // (B, T, 3H, hs)
    // Row layout: block (part * H + h) * B + b is that pair's (T, hs) rows of q, k or v.
    const rows = tf.reshape(tf.transpose(x4, [2, 0, 1, 3]), [3, pairs, t * hs]); // (3, H*B, T*hs)
    // Column layout: the same blocks transposed, (hs, T); used for k^T (forward) and v^T (backward).
    const cols = tf.reshape(tf.transpose(x4, [2, 0, 3, 1]), [3, pairs, hs * t]); // (3, H*B, hs*T)
    const parts = blockIndices(3); // 3 x (1): q, k, v
    const [qRows, kRows, vRows] = parts.map((i) => tf.reshape(tf.gatherND(rows, i), [pairs, t, hs])) as tf.Tensor3D[]; // 3 x (H*B, T, hs)
    const [, kCols, vCols] = parts.map((i) => tf.reshape(tf.gatherND(cols, i), [pairs, hs, t])) as tf.Tensor3D[]; // 3 x (H*B, hs, T)
    const indices = blockIndices(pairs); // H*B x (1)
    const q = blocks(qRows, indices); // (T, hs) each
    const kT = blocks(kCols, indices); // (hs, T) each
    const v = blocks(vRows, indices); // (T, hs) each
    const scores = tf.concat(indices.map((_, i) => tf.matMul(q[i], kT[i])), 0); // (H*B*T, T): rows of all pairs stacked
    const biased = tf.add(tf.reshape(tf.mul(scores, scale), [pairs, t, t]), causalBias); // (H*B, T, T)
    const probs = tf.reshape(tf.softmax(tf.reshape(biased, [pairs * t, t])), [pairs, t, t]) as tf.Tensor3D; // (H*B, T, T)
    const pr = blocks(probs, indices); // (T, T) each
    const heads = tf.concat(indices.map((_, i) => tf.matMul(pr[i], v[i])), 0); // (H*B*T, hs) = (H, B, T, hs)
    const out = tf.reshape(tf.transpose(tf.reshape(heads, [nHeads, batch, t, hs]), [1, 2, 0, 3]), [n, d]); // (B, T, H, hs) = (B*T, D)
    save([qRows, kRows, vCols, probs]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, svT, sProbs] = saved as tf.Tensor3D[]; // (H*B, T, hs) x 2, (H*B, hs, T), (H*B, T, T)
        const idx = blockIndices(pairs); // made again: the forward's are disposed with its scope
        const dy4 = tf.reshape(dy, [batch, t, nHeads, hs]); // (B, T, H, hs)
        const dOut = tf.reshape(tf.transpose(dy4, [2, 0, 1, 3]), [pairs, t, hs]) as tf.Tensor3D; // (H*B, T, hs)
        const dO = blocks(dOut, idx); // (T, hs) each
        const vT = blocks(svT, idx); // (hs, T) each
        const dProbs = tf.reshape(tf.concat(idx.map((_, i) => tf.matMul(dO[i], vT[i])), 0), [pairs, t, t]); // (H*B, T, T)
        // Softmax backward on all pairs at once: dS = P * (dP - sum_j dP * P), times the score scale.
        const rowDot = tf.sum(tf.mul(dProbs, sProbs), -1, true); // (H*B, T, 1)
        const dScores = tf.mul(tf.mul(tf.sub(dProbs, rowDot), sProbs), scale) as tf.Tensor3D; // (H*B, T, T)
        const dS = blocks(dScores, idx); // (T, T) each
        const dST = blocks(transposeStack(dScores), idx); // (T, T) each, transposed
        const pT = blocks(transposeStack(sProbs), idx); // (T, T) each, transposed
        const k = blocks(sk, idx); // (T, hs) each
        const q2 = blocks(sq, idx); // (T, hs) each
        const dQ = idx.map((_, i) => tf.matMul(dS[i], k[i])); // (T, T) @ (T, hs)
        const dK = idx.map((_, i) => tf.matMul(dST[i], q2[i])); // (T, T) @ (T, hs)
        const dV = idx.map((_, i) => tf.matMul(pT[i], dO[i])); // (T, T) @ (T, hs)
        const dRows = tf.reshape(tf.concat([...dQ, ...dK, ...dV], 0), [3 * nHeads, batch, t, hs]); // (3H, B, T, hs)
        return tf.reshape(tf.transpose(dRows, [1, 2, 0, 3]), [n, width]); // (B, T, 3H, hs) = (B*T, 3D)
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D) => tf.Tensor2D);
  return node(qkv);
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
