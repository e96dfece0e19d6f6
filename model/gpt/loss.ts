/**
 * Language-model losses.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Mean next-token cross-entropy over the positions where `weights` is non-zero (SFT trains on the
 * assistant tokens only; pretraining passes all ones).
 *
 * Written for tfjs-wasm, where Exp and LogSoftmax are scalar loops (~60-80 ms on (2048, 4096)) but
 * Softmax is XNNPACK's vectorised kernel (~8 ms): the forward takes one softmax P and gets the
 * log-sum-exp from it without another exp, lse = max(x) - log(max(P)) (the largest probability is
 * at least 1/V, so its log never underflows), and the per-token loss is lse - x[target]. The
 * gradient is P - onehot(target), from the saved P. Targets are picked and written with
 * gatherND/tensorScatterUpdate; a float32 oneHot is wrong on wasm and an int32 one plus a cast costs ~6 ms.
 * logits: (N, V), targets: (N) int32, weights: (N) float32 -> scalar
 */
export function maskedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const total = tf.maximum(tf.sum(weights), 1e-8); // avoid 0/0 on an all-masked batch
  const [n] = logits.shape;
  const perToken = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const probs = tf.softmax(x); // (N, V)
    const lse = tf.sub(tf.max(x, -1), tf.log(tf.max(probs, -1))); // (N)
    const at = tf.stack([tf.range(0, n, 1, 'int32'), tf.cast(targets, 'int32')], 1); // (N, 2): (row, target)
    const picked = tf.gatherND(x, at); // (N)
    save([probs, at]);
    return {
      value: tf.sub(lse, picked), // (N)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sProbs, sAt] = saved; // (N, V), (N, 2)
        const scaled = tf.mul(sProbs, tf.reshape(dy, [n, 1])); // (N, V): P * dy
        const atTarget = tf.mul(tf.sub(tf.gatherND(sProbs, sAt), 1), dy); // (N): (P[target] - 1) * dy
        // Overwrite the N target entries: one copy pass, where subtracting a scattered one-hot costs two.
        return tf.tensorScatterUpdate(scaled, sAt, atTarget); // (N, V): (P - onehot) * dy
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const losses = perToken(logits) as tf.Tensor1D; // (N)
  return tf.div(tf.sum(tf.mul(losses, weights)), total) as tf.Scalar;
}
