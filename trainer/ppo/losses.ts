/** PPO losses as small pure functions of tensors (OpenRLHF models/loss.py). */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Clipped surrogate: mean over actions of max(-A r, -A clip(r, 1-eps, 1+eps)), r = exp(logp - logp_old).
 * Also returns the share of actions where the clip was active and an approximate KL to the old policy.
 * logp, oldLogp, advantages: (A) -> scalars
 */
export function policyLoss(logp: tf.Tensor1D, oldLogp: tf.Tensor1D, advantages: tf.Tensor1D, eps: number): { loss: tf.Scalar; clipFrac: tf.Scalar; approxKl: tf.Scalar } {
  const logRatio = tf.sub(logp, oldLogp); // (A)
  const ratio = tf.exp(logRatio); // (A)
  const unclipped = tf.mul(tf.neg(advantages), ratio); // (A)
  const clipped = tf.mul(tf.neg(advantages), tf.clipByValue(ratio, 1 - eps, 1 + eps)); // (A)
  const loss = tf.mean(tf.maximum(unclipped, clipped)) as tf.Scalar;
  const clipFrac = tf.mean(tf.cast(tf.greater(tf.abs(tf.sub(ratio, 1)), eps), 'float32')) as tf.Scalar;
  const approxKl = tf.mean(tf.sub(tf.sub(ratio, 1), logRatio)) as tf.Scalar; // k3 estimate, >= 0
  return { loss, clipFrac, approxKl };
}

/**
 * Clipped value loss: 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)).
 * values, oldValues, returns: (A) -> scalar
 */
export function valueLoss(values: tf.Tensor1D, oldValues: tf.Tensor1D, returns: tf.Tensor1D, eps: number): tf.Scalar {
  const clippedValues = tf.add(oldValues, tf.clipByValue(tf.sub(values, oldValues), -eps, eps)); // (A)
  const a = tf.square(tf.sub(values, returns)); // (A)
  const b = tf.square(tf.sub(clippedValues, returns)); // (A)
  return tf.mul(tf.mean(tf.maximum(a, b)), 0.5) as tf.Scalar;
}
