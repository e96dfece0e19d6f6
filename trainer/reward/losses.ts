/**
 * Reward-model losses (pure functions of score tensors):
 * - Bradley-Terry on pairs: -log sigmoid(r_chosen - r_rejected - margin) (Ouyang et al. 2022);
 * - pointwise logistic on single thumbs: binary cross-entropy of sigmoid(r) against up = 1 / down = 0;
 * - reward centering: mean r^2, which keeps scores near 0 without changing preferences
 *   (Eisenstein et al. 2023).
 */
import * as tf from '@tensorflow/tfjs-core';

/** chosen, rejected: (P); weights: (P) per-pair weight -> scalar (weighted mean) */
export function bradleyTerryLoss(chosen: tf.Tensor1D, rejected: tf.Tensor1D, weights: tf.Tensor1D, margin = 0): tf.Scalar {
  const diff = tf.sub(tf.sub(chosen, rejected), margin); // (P)
  const loss = tf.softplus(tf.neg(diff)); // (P): -log sigmoid(diff)
  return tf.div(tf.sum(tf.mul(loss, weights)), tf.maximum(tf.sum(weights), 1e-8)) as tf.Scalar;
}

/** scores: (R); labels: (R) in {0, 1} -> scalar */
export function pointwiseLoss(scores: tf.Tensor1D, labels: tf.Tensor1D): tf.Scalar {
  // BCE with logits: softplus(s) - y*s, stable for large |s|.
  return tf.mean(tf.sub(tf.softplus(scores), tf.mul(labels, scores))) as tf.Scalar;
}

/** scores: (N) -> scalar */
export function centeringLoss(scores: tf.Tensor1D): tf.Scalar {
  return tf.mean(tf.square(scores)) as tf.Scalar;
}
