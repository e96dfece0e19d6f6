/**
 * Forward passes over (prompt + reply) sequences that read only the rows that predict actions: the
 * hidden state at position p-1 predicts the action at p. Logits are computed for those rows only
 * (a reply is a small part of a sequence), through a row lookup with a scatter gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../../model/gpt/gpt.ts';
import { selectedLogProbs, entropy } from '../../model/gpt/logprobs.ts';
import { embedding } from '../../model/gpt/ops.ts';
import { padRight } from '../batching/padding.ts';

interface ActionBatch {
  ids: Int32Array;
  rows: number;
  cols: number;
  /** (A) flat rows b*cols + p - 1 whose hidden state predicts each action. */
  predictRows: Int32Array;
  /** (A) the action ids. */
  targets: Int32Array;
}

export function actionBatch(promptIds: number[][], actions: number[][], padId: number): ActionBatch {
  const seqs = promptIds.map((p, i) => [...p, ...actions[i]]);
  const batch = padRight(seqs, padId);
  const rows: number[] = [];
  const targets: number[] = [];
  promptIds.forEach((p, b) => {
    actions[b].forEach((a, j) => {
      rows.push(b * batch.cols + p.length + j - 1);
      targets.push(a);
    });
  });
  return { ids: batch.ids, rows: batch.rows, cols: batch.cols, predictRows: Int32Array.from(rows), targets: Int32Array.from(targets) };
}

/** Hidden states of the predicting rows. Call inside tf.tidy. -> (A, D) */
function actionHidden(model: GPT, b: ActionBatch, training: boolean): tf.Tensor2D {
  const x = tf.tensor2d(b.ids, [b.rows, b.cols], 'int32'); // (B, T)
  const h = model.hidden(x, training); // (B*T, D)
  return embedding(h, tf.tensor1d(b.predictRows, 'int32')); // (A, D)
}

/** log pi(action) at the sampling temperature, and optionally the entropy per action. -> (A) */
export function actionLogProbs(model: GPT, b: ActionBatch, temperature: number, training: boolean, withEntropy = false): { logp: tf.Tensor1D; entropy?: tf.Tensor1D } {
  let logits = model.lmLogits(actionHidden(model, b, training)); // (A, V)
  if (temperature !== 1) logits = tf.div(logits, temperature) as tf.Tensor2D;
  const logp = selectedLogProbs(logits, tf.tensor1d(b.targets, 'int32')); // (A)
  return { logp, entropy: withEntropy ? entropy(logits) : undefined };
}

/** Value of the state before each action. -> (A) */
export function actionValues(model: GPT, b: ActionBatch, training: boolean): tf.Tensor1D {
  return model.scalar(actionHidden(model, b, training)); // (A)
}
