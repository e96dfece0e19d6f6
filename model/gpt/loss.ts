/**
 * Language-model losses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidyKeep } from './ops.ts';

/**
 * Mean next-token cross-entropy over the positions where `weights` is non-zero (SFT trains on the
 * assistant tokens only; pretraining passes all ones). The gradient is written out by hand,
 * softmax(logits) - onehot(target), because tfjs's automatic one goes through ops that are slow or
 * missing on wasm; the one-hot is built as int32 and cast, since a float32 oneHot is wrong on wasm.
 * logits: (N, V), targets: (N) int32, weights: (N) float32 -> scalar
 */
export function maskedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const total = tf.maximum(tf.sum(weights), 1e-8); // avoid 0/0 on an all-masked batch
  const perToken = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const lse = tf.logSumExp(x, -1, true); // (N, 1)
    const oneHot = tf.cast(tf.oneHot(targets, x.shape[1]!), 'float32'); // (N, V)
    const picked = tf.sum(tf.mul(x, oneHot), -1); // (N)
    save([x, lse, oneHot]);
    return {
      value: tf.sub(tf.reshape(lse, [-1]), picked), // (N)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, slse, sOneHot] = saved;
        const probs = tf.exp(tf.sub(sx, slse)); // (N, V)
        return tf.mul(tf.sub(probs, sOneHot), tf.expandDims(dy, 1)); // (N, V)
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const losses = perToken(logits) as tf.Tensor1D; // (N)
  return tf.div(tf.sum(tf.mul(losses, weights)), total) as tf.Scalar;
}

/** Per-token log-probabilities of `targets` (no gradient; scoring). logits: (N, V), targets: (N) -> (N) */
export function tokenLogProbs(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  return tidyKeep(() => {
    const logp = tf.logSoftmax(logits); // (N, V)
    const oneHot = tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32'); // (N, V)
    return tf.sum(tf.mul(logp, oneHot), -1) as tf.Tensor1D; // (N)
  });
}
