/**
 * The reward model: the policy's trunk plus a scalar head that reads the final hidden state of the
 * last token of `renderConversation(prompt + reply)` (the reply's end-of-turn), as in InstructGPT.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GPT } from '../../model/gpt/gpt.ts';
import { embedding } from '../../model/gpt/ops.ts';
import { renderConversation, type ChatMessage, type Tokenizer } from '../../model/tokenizer/index.ts';
import { keepTail, padRight, type PaddedBatch } from '../batching/padding.ts';

/** A new model with a scalar head whose trunk is a copy of `policy`'s (the head starts near 0). */
export function scalarModelFromTrunk(policy: GPT, prefix?: string): GPT {
  const model = new GPT(policy.config, { scalarHead: true, prefix });
  const weights = new Map<string, tf.Tensor>();
  const theirs = policy.namedWeights();
  // The head keeps its own initial values (a copy: assigning a variable to itself frees its data).
  const own: tf.Tensor[] = [];
  for (const [name, v] of model.namedWeights()) {
    const t = theirs.get(name) ?? own[own.push(tf.clone(v)) - 1];
    weights.set(name, t);
  }
  model.loadWeights(weights);
  for (const t of own) t.dispose();
  return model;
}

/** The scored sequence for (prompt, reply): the whole exchange, cropped from the left to the window. */
export function exchangeIds(tok: Tokenizer, prompt: readonly ChatMessage[], reply: string, context: number): number[] {
  return keepTail(renderConversation(tok, [...prompt, { role: 'assistant', content: reply }]).ids, context);
}

/**
 * Scalar output at each row's last real token. Call inside tf.tidy.
 * batch: (B, T) right-padded -> (B)
 */
export function lastTokenScores(model: GPT, batch: PaddedBatch, training: boolean): tf.Tensor1D {
  const x = tf.tensor2d(batch.ids, [batch.rows, batch.cols], 'int32'); // (B, T)
  const h = model.hidden(x, training); // (B*T, D)
  const rows = tf.tensor1d(batch.lengths.map((len, b) => b * batch.cols + len - 1), 'int32'); // (B)
  // Row lookup with a scatter gradient (tfjs has no gradient for gatherND).
  return model.scalar(embedding(h, rows)); // (B)
}

/** Scores many sequences in batches (no gradient). */
export async function scoreSequences(model: GPT, seqs: number[][], padId: number, batchSize = 16): Promise<Float32Array> {
  const out = new Float32Array(seqs.length);
  for (let i = 0; i < seqs.length; i += batchSize) {
    const batch = padRight(seqs.slice(i, i + batchSize), padId);
    const s = tf.tidy(() => lastTokenScores(model, batch, false));
    out.set(await s.data(), i);
    s.dispose();
  }
  return out;
}
