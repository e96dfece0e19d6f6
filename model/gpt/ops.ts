/**
 * Differentiable building blocks laid out for the fast kernels of tfjs-wasm.
 *
 * Why custom gradients: on wasm a plain 2-D matMul runs at ~12-15 GFLOP/s, but matMul with
 * transposeA/transposeB or a batched matMul at ~0.5-2 GFLOP/s, and tfjs's automatic gradient of matMul
 * uses the transposed forms. `matMul2d` therefore computes its gradients with explicit transposes and
 * plain matMuls. The gather gradient needs `UnsortedSegmentSum`, which wasm lacks, so `embedding`
 * scatters its gradient with scatterND (which sums duplicate rows).
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * a @ b for 2-D tensors, with a gradient that only uses plain 2-D matMuls.
 * a: (N, K), b: (K, M) -> (N, M)
 */
export const matMul2d = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), // (N, M)
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      const dy2 = dy as tf.Tensor2D; // (N, M)
      const da = tf.matMul(dy2, tf.transpose(sb)); // (N, M) @ (M, K) -> (N, K)
      // db = a^T @ dy. Transpose whichever operand is cheaper: a is (N, K), dy is (N, M).
      const [n, k] = sa.shape;
      const m = dy2.shape[1];
      const db =
        n * k <= n * m + k * m
          ? tf.matMul(tf.transpose(sa), dy2) // (K, N) @ (N, M) -> (K, M)
          : tf.transpose(tf.matMul(tf.transpose(dy2), sa)); // ((M, N) @ (N, K))^T -> (K, M)
      return [da, db];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** x @ w + b. x: (N, Din), w: (Din, Dout), b: (Dout) -> (N, Dout) */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const y = matMul2d(x, w); // (N, Dout)
  return b ? tf.add(y, b) : y;
}

/**
 * Rows of `table` selected by `ids`, with a scatter-based gradient.
 * table: (V, D), ids: (N) int32 -> (N, D)
 */
export function embedding(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const lookup = tf.customGrad(((t: tf.Tensor, save: tf.GradSaveFunc) => {
    // ids must be saved, not just captured: tensors made during the forward pass are disposed before
    // the backward pass unless saved.
    save([ids]);
    return {
      value: tf.gather(t, ids), // (N, D)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.scatterND(tf.expandDims(saved[0], 1), dy, t.shape), // (V, D), duplicates summed
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return lookup(table) as tf.Tensor2D;
}

/** LayerNorm over the last axis. x: (N, D), gamma/beta: (D) -> (N, D) */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5): tf.Tensor2D {
  const mean = tf.mean(x, -1, true); // (N, 1)
  const centered = tf.sub(x, mean); // (N, D)
  const variance = tf.mean(tf.square(centered), -1, true); // (N, 1)
  const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, eps))); // (N, D)
  return tf.add(tf.mul(normed, gamma), beta);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (as GPT-2). */
export function gelu(x: tf.Tensor2D): tf.Tensor2D {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

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
