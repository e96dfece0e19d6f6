/**
 * Log-probabilities of chosen tokens and the entropy of next-token distributions, differentiable, for
 * policy-gradient training. Like `maskedCrossEntropy`, the forward takes one softmax (XNNPACK's fast
 * kernel on wasm) and derives log-sum-exp from it; the gradient of log p[target] with respect to the
 * logits is onehot(target) - P, written out by hand.
 * logits: (N, V), targets: (N) int32 -> (N)
 */
import * as tf from '@tensorflow/tfjs-core';

export function selectedLogProbs(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const [n, vocab] = logits.shape;
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const probs = tf.softmax(x); // (N, V)
    const lse = tf.sub(tf.max(x, -1), tf.log(tf.max(probs, -1))); // (N): the largest p >= 1/V never underflows
    const at = tf.stack([tf.range(0, n, 1, 'int32'), tf.cast(targets, 'int32')], 1); // (N, 2)
    save([probs, at]);
    return {
      value: tf.sub(tf.gatherND(x, at), lse), // (N)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sProbs, sAt] = saved;
        const scaled = tf.mul(sProbs, tf.reshape(dy, [n, 1])); // (N, V): P * dy
        return tf.sub(tf.scatterND(sAt, dy, [n, vocab]), scaled); // (N, V): (onehot - P) * dy
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(logits) as tf.Tensor1D;
}

/** Entropy of softmax(logits) per row, -sum p log p, through standard (differentiable) ops. (N, V) -> (N) */
export function entropy(logits: tf.Tensor2D): tf.Tensor1D {
  const logp = tf.logSoftmax(logits); // (N, V)
  return tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), -1)) as tf.Tensor1D;
}
