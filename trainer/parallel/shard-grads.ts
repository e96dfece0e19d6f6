/** The mean masked cross-entropy of one (shard of a) batch and its gradients, in one tidy. */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { Batch } from '../batching/batches.ts';
import { batchLoss } from '../train-step.ts';

/** Loss and gradients keyed by variable name; the caller disposes them. */
export function shardLossAndGrads(model: GPT, vars: tf.Variable[], b: Batch): { loss: tf.Scalar; grads: tf.NamedTensorMap } {
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => batchLoss(model, b, true), vars);
    return { loss: value, grads };
  });
}
