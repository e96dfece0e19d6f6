/**
 * One optimisation step and held-out evaluation for a language model: masked next-token
 * cross-entropy, global-norm clipping, AdamW. One tf.tidy per step; nothing awaited inside it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../model/gpt/gpt.ts';
import { maskedCrossEntropy } from '../model/gpt/loss.ts';
import type { AdamW } from './optim/adamw.ts';
import { clipByGlobalNorm } from './optim/adamw.ts';
import type { Batch, BatchSource } from './batching/batches.ts';

export function batchLoss(model: GPT, b: Batch, training: boolean): tf.Scalar {
  const x = tf.tensor2d(b.x, [b.rows, b.cols], 'int32'); // (B, T)
  const logits = model.lmLogits(model.hidden(x, training)); // (B*T, V)
  return maskedCrossEntropy(logits, tf.tensor1d(b.y, 'int32'), tf.tensor1d(b.w, 'float32'));
}

export interface StepResult {
  loss: number;
  gradNorm: number;
}

export async function trainStep(model: GPT, optimizer: AdamW, vars: tf.Variable[], b: Batch, lr: number, gradClip: number): Promise<StepResult> {
  const [loss, norm] = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => batchLoss(model, b, true), vars);
    const clipped = clipByGlobalNorm(grads, gradClip);
    optimizer.apply(clipped.grads, lr);
    return [value, clipped.norm];
  });
  const [l, n] = await Promise.all([loss.data(), norm.data()]);
  loss.dispose();
  norm.dispose();
  return { loss: l[0], gradNorm: n[0] };
}

/** Token-weighted mean loss over the first `batches` batches of epoch 0 of `source` (dropout off). */
export async function evaluate(model: GPT, source: BatchSource, batches: number): Promise<{ loss: number; ppl: number; tokens: number }> {
  let sum = 0;
  let tokens = 0;
  const n = Math.min(batches, source.batchesPerEpoch);
  for (let i = 0; i < n; i++) {
    const b = source.batch(0, i);
    if (b.tokens === 0) continue;
    const loss = tf.tidy(() => batchLoss(model, b, false));
    sum += (await loss.data())[0] * b.tokens;
    loss.dispose();
    tokens += b.tokens;
  }
  const loss = tokens > 0 ? sum / tokens : Number.NaN;
  return { loss, ppl: Math.exp(loss), tokens };
}
