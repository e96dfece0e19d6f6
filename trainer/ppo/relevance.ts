/**
 * The relevance bonus: how much more likely the frozen reference finds a reply after its own prompt
 * than after an empty user turn, per reply token,
 *   (log p_ref(y | x) - log p_ref(y | empty)) / |y|,
 * the pointwise mutual information of prompt and reply behind Li et al. (2016)'s maximum-mutual-
 * information objective. A generic reply ("I don't know.") is about as likely after any prompt and
 * scores near 0; a reply that answers this prompt scores above it. Averaged over the reply's tokens
 * so that it does not pay for length.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../../model/gpt/gpt.ts';
import { renderPrompt, type Tokenizer } from '../../model/tokenizer/index.ts';
import { actionBatch, actionLogProbs } from './forward.ts';

/** The prompt with nothing in it: one empty user turn, rendered as chat prompts are. */
export function emptyPromptIds(tokenizer: Tokenizer): number[] {
  return renderPrompt(tokenizer, [{ role: 'user', content: '' }], 8).ids;
}

/**
 * Per reply: mean over its actions of refLogp (given its prompt, already computed for the KL) minus
 * the reference's log-probability of the same action after the empty prompt.
 * actions[i] must be non-empty; refLogp is flat over all actions in order.
 */
export async function relevanceScores(reference: GPT, tokenizer: Tokenizer, actions: number[][], refLogp: Float32Array, temperature: number): Promise<Float64Array> {
  const empty = emptyPromptIds(tokenizer);
  const batch = actionBatch(actions.map(() => empty), actions, tokenizer.special.pad);
  const t = tf.tidy(() => actionLogProbs(reference, batch, temperature, false).logp); // (A)
  const unconditional = (await t.data()) as Float32Array;
  t.dispose();
  const out = new Float64Array(actions.length);
  let at = 0;
  actions.forEach((a, i) => {
    let gain = 0;
    for (let j = 0; j < a.length; j++, at++) gain += refLogp[at] - unconditional[at];
    out[i] = gain / a.length;
  });
  return out;
}
