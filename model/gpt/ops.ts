/**
 * Differentiable building blocks laid out for the fast kernels of tfjs-wasm.
 *
 * What is fast and slow on tfjs-wasm 4.22 (measured on the `small` preset's shapes; see
 * docs/perf-training.md), and therefore why these ops are written the way they are:
 * - A plain 2-D matMul goes to XNNPACK (~30-36 GFLOP/s); transposeA/transposeB or a batched (3-D)
 *   matMul take a naive loop (0.4-2.5 GFLOP/s). tfjs's automatic matMul gradient uses the transposed
 *   forms, so every matMul here has a custom gradient made of plain 2-D matMuls and explicit transposes.
 *   XNNPACK packs the right operand anew for every new tensor (~4 ns per element), so the narrow
 *   operand is put on the right where there is a choice.
 * - A 2-D Transpose kernel is ~7x slower than the 4-D one on the same data, so `transpose2d` runs
 *   (R, C) -> (C, R) as 4-D transposes of (R/a, a, C/b, b).
 * - A reduction over a non-innermost axis transposes first with the slow kernel (Sum over axis 0 of
 *   (2048, 512): ~10 ms); ones(1, N) @ dy gives the same column sums in ~1 ms, or for free when dy
 *   was just packed as a right operand, so bias and LayerNorm parameter gradients use that.
 * - GatherV2 costs ~20 ns per output element, GatherND copies whole rows (~50x faster here): row
 *   lookups use gatherND.
 * - Pow and Tanh are scalar loops (~20 ms per 1M elements), Sigmoid is vectorised (~1 ms): GELU
 *   uses x*x*x and 0.5 * (1 + tanh(z)) = sigmoid(2z).
 * - The gradient tape clones (copies, on wasm) every tensor an op saves and adds one tape node per
 *   op, so each block below is one custom-gradient node whose backward is written out in few ops.
 */
import * as tf from '@tensorflow/tfjs-core';

/** tf.customGrad with the loose typing tfjs's declaration needs, for functions of 1-3 tensors. */
function customGrad<F extends (...args: never[]) => tf.Tensor>(
  f: (...args: [...Parameters<F>, tf.GradSaveFunc]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
): F {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}

/** The largest of the preferred tile sizes that divides n (1 if none does). */
function tileSize(n: number, preferred: number[]): number {
  for (const f of preferred) if (n % f === 0) return f;
  return 1;
}

/**
 * x^T for a 2-D tensor, as two 4-D transposes over (a, b) tiles: first each tile is transposed in
 * place, then whole tile rows are moved. wasm's 2-D Transpose kernel walks one side with a full-row
 * stride (~9 ns per element); the 4-D kernel is faster, and the two passes keep both reads and writes
 * within a few cache lines ((2048, 4096): ~20 ms against ~65 ms in one 4-D pass and ~90 ms in 2-D).
 * Small tiles suit tensors larger than the cache. Differentiable through standard ops.
 * x: (R, C) -> (C, R)
 */
function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  const [r, c] = x.shape;
  const preferred = r * c >= 1 << 21 ? [8, 4, 2] : [32, 16, 8, 4, 2];
  const a = tileSize(r, preferred);
  const b = tileSize(c, preferred);
  const tiles = tf.transpose(tf.reshape(x, [r / a, a, c / b, b]), [0, 2, 3, 1]); // (R/a, C/b, b, a): each tile transposed
  return tf.reshape(tf.transpose(tiles, [1, 2, 0, 3]), [c, r]); // (C/b, b, R/a, a) = (C, R)
}

/** ones(1, N) @ y: column sums of y without a non-innermost reduction. y: (N, M) -> (M) */
function sumRows(y: tf.Tensor2D): tf.Tensor1D {
  const [n, m] = y.shape;
  return tf.reshape(tf.matMul(tf.ones([1, n]), y), [m]); // (1, N) @ (N, M) -> (M)
}

/**
 * a^T @ dy, the weight gradient of a @ w, and optionally the column sums of dy (the bias gradient).
 * XNNPACK repacks a matMul's right operand on every call (~4 ns per element: ~40 ms for a
 * (2048, 4096) one), so the narrower of a and dy goes on the right. The column sums then come almost
 * free: ones(1, N) @ dy reuses dy's packing (the operator cache is keyed by the right operand), or
 * they are row sums of the dy^T already made.
 * a: (N, K), dy: (N, M) -> (K, M) and (M)
 */
function weightGrad(a: tf.Tensor2D, dy: tf.Tensor2D, withBias: boolean): [tf.Tensor2D, tf.Tensor1D | null] {
  const [n, k] = a.shape;
  const m = dy.shape[1];
  if (m <= k) {
    const dw = tf.matMul(transpose2d(a), dy) as tf.Tensor2D; // (K, N) @ (N, M) -> (K, M)
    const ones = tf.ones([1, n]) as tf.Tensor2D; // (1, N)
    return [dw, withBias ? (tf.reshape(tf.matMul(ones, dy), [m]) as tf.Tensor1D) : null]; // (1, N) @ (N, M) -> (M)
  }
  const dyT = transpose2d(dy); // (M, N)
  const dw = transpose2d(tf.matMul(dyT, a)); // ((M, N) @ (N, K))^T -> (K, M)
  return [dw, withBias ? (tf.sum(dyT, -1) as tf.Tensor1D) : null]; // (M)
}

/**
 * a @ b for 2-D tensors, with a gradient that only uses plain 2-D matMuls.
 * a: (N, K), b: (K, M) -> (N, M)
 */
const matMul2d = customGrad<(a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D>((a, b, save) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b), // (N, M)
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as tf.Tensor2D[]; // (N, K), (K, M)
      const dy2 = dy as tf.Tensor2D; // (N, M)
      return [tf.matMul(dy2, transpose2d(sb)), weightGrad(sa, dy2, false)[0]]; // (N, K), (K, M)
    },
  };
});

/**
 * a @ b^T for 2-D tensors (the tied output projection: hidden @ embedding^T). The gradient of a needs
 * b itself and the gradient of b is dy^T @ a with the narrow a on the right (see weightGrad), so
 * besides b^T in the forward only dy is transposed.
 * a: (N, K), b: (M, K) -> (N, M)
 */
export const matMulBT = customGrad<(a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D>((a, b, save) => {
  save([a, b]);
  return {
    value: tf.matMul(a, transpose2d(b)), // (N, K) @ (K, M) -> (N, M)
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as tf.Tensor2D[]; // (N, K), (M, K)
      const dy2 = dy as tf.Tensor2D; // (N, M)
      const da = tf.matMul(dy2, sb); // (N, M) @ (M, K) -> (N, K)
      const db = tf.matMul(transpose2d(dy2), sa); // (M, N) @ (N, K) -> (M, K)
      return [da, db];
    },
  };
});

/**
 * x @ w + b as one tape node; the bias gradient is a ones-row matMul (see the header).
 * x: (N, Din), w: (Din, Dout), b: (Dout) -> (N, Dout)
 */
const affine = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D>((x, w, b, save) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b), // (N, Dout)
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as tf.Tensor2D[]; // (N, Din), (Din, Dout)
      const dy2 = dy as tf.Tensor2D; // (N, Dout)
      const [dw, db] = weightGrad(sx, dy2, true); // (Din, Dout), (Dout)
      return [tf.matMul(dy2, transpose2d(sw)), dw, db!]; // (N, Din), (Din, Dout), (Dout)
    },
  };
});

/** x @ w + b. x: (N, Din), w: (Din, Dout), b: (Dout) -> (N, Dout) */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  return b ? affine(x, w, b) : matMul2d(x, w);
}

/**
 * Rows of `table` selected by `ids`, with a scatter-based gradient.
 * table: (V, D), ids: (N) int32 -> (N, D)
 */
export function embedding(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const lookup = customGrad<(t: tf.Tensor2D) => tf.Tensor2D>((t, save) => {
    const rows = tf.reshape(ids, [ids.shape[0], 1]); // (N, 1): one index per output row
    // The ids must be saved, not just captured: tensors made during the forward pass are disposed
    // before the backward pass unless saved.
    save([rows]);
    return {
      value: tf.gatherND(t, rows), // (N, D): GatherND copies rows; GatherV2 is ~50x slower on wasm
      gradFunc: (dy, saved) => tf.scatterND(saved[0], dy, t.shape), // (V, D), duplicate ids summed
    };
  });
  return lookup(table);
}

/**
 * LayerNorm over the last axis, as one tape node. Forward as in the textbook; backward with the
 * normalised input x^ and 1/sigma saved: with g = dy * gamma,
 * dx = (g - mean(g) - x^ * mean(g * x^)) / sigma, dgamma = sum_rows(dy * x^), dbeta = sum_rows(dy).
 * x: (N, D), gamma/beta: (D) -> (N, D)
 */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): tf.Tensor2D {
  const node = customGrad<(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D>((xi, g, b, save) => {
    const mean = tf.mean(xi, -1, true); // (N, 1)
    const centered = tf.sub(xi, mean); // (N, D)
    const variance = tf.mean(tf.square(centered), -1, true); // (N, 1)
    const rstd = tf.rsqrt(tf.add(variance, eps)); // (N, 1)
    const normed = tf.mul(centered, rstd); // (N, D)
    save([normed, rstd, g]);
    return {
      value: tf.add(tf.mul(normed, g), b), // (N, D)
      gradFunc: (dy, saved) => {
        const [sNormed, sRstd, sGamma] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D]; // (N, D), (N, 1), (D)
        const dy2 = dy as tf.Tensor2D; // (N, D)
        const gn = tf.mul(dy2, sGamma); // (N, D): gradient w.r.t. the normalised input
        const meanG = tf.mean(gn, -1, true); // (N, 1)
        const meanGX = tf.mean(tf.mul(gn, sNormed), -1, true); // (N, 1)
        const dx = tf.mul(tf.sub(tf.sub(gn, meanG), tf.mul(sNormed, meanGX)), sRstd); // (N, D)
        const dGamma = sumRows(tf.mul(dy2, sNormed) as tf.Tensor2D); // (D)
        return [dx, dGamma, sumRows(dy2)]; // (N, D), (D), (D)
      },
    };
  });
  return node(x, gamma, beta);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * GELU, tanh approximation (as GPT-2): 0.5 x (1 + tanh(c (x + a x^3))), computed as the equal
 * x * sigmoid(u) with u = 2c (x + a x^3), because wasm's Sigmoid is vectorised and Tanh and Pow are not.
 * Gradient: s + x s (1 - s) du/dx with s = sigmoid(u), du/dx = 2c (1 + 3a x^2).
 * x: (N, F) -> (N, F)
 */
export const gelu = customGrad<(x: tf.Tensor2D) => tf.Tensor2D>((x, save) => {
  const x2 = tf.mul(x, x); // (N, F)
  const u = tf.mul(tf.add(tf.mul(x2, 2 * GELU_C * GELU_A), 2 * GELU_C), x); // (N, F): 2c (x + a x^3)
  const s = tf.sigmoid(u); // (N, F)
  save([x, s]);
  return {
    value: tf.mul(x, s), // (N, F)
    gradFunc: (dy, saved) => {
      const [sx, ss] = saved; // (N, F) x 2: x and sigmoid(u)
      const dudx = tf.add(tf.mul(tf.mul(sx, sx), 6 * GELU_C * GELU_A), 2 * GELU_C); // (N, F)
      const slope = tf.mul(tf.mul(tf.mul(sx, ss), tf.sub(1, ss)), dudx); // (N, F): x s (1 - s) du/dx
      return tf.mul(dy, tf.add(ss, slope)); // (N, F)
    },
  };
});

/** Dropout that is the identity when not training or rate is 0 (no random op on the inference path). */
export function maybeDropout<T extends tf.Tensor>(x: T, rate: number, training: boolean): T {
  return training && rate > 0 ? (tf.dropout(x, rate) as T) : x;
}

/**
 * tf.tidy for a scope that returns a structure of tensors (objects, arrays) with precise types:
 * every tensor reachable from the result survives, everything else made inside is disposed.
 */
export function tidyKeep<T>(fn: () => T): T {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}
