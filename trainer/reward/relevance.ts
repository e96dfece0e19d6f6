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
import { renderPrompt, type ChatMessage, type Tokenizer } from '../../model/tokenizer/index.ts';
import { actionBatch, actionLogProbs } from '../ppo/forward.ts';

/** Longest reply scored, in tokens (the end-of-turn is added after it). */
const MAX_REPLY_TOKENS = 48;

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

/**
 * The relevance of each (prompt, reply) pair under the language model `lm` (a policy): the reply's
 * tokens (cut at MAX_REPLY_TOKENS) and its end-of-turn, scored after the prompt (left-cropped to fit
 * the context) and after the empty prompt.
 */
export async function replyRelevance(lm: GPT, tokenizer: Tokenizer, prompts: readonly (readonly ChatMessage[])[], replies: readonly string[], batchSize = 32): Promise<Float64Array> {
  const out = new Float64Array(replies.length);
  for (let i = 0; i < replies.length; i += batchSize) {
    const actions = replies.slice(i, i + batchSize).map((r) => [...tokenizer.encode(r).slice(0, MAX_REPLY_TOKENS), tokenizer.special.eot]);
    const promptIds = prompts.slice(i, i + batchSize).map((p, k) => renderPrompt(tokenizer, p, lm.config.context - actions[k].length).ids);
    const batch = actionBatch(promptIds, actions, tokenizer.special.pad);
    const t = tf.tidy(() => actionLogProbs(lm, batch, 1, false).logp); // (A)
    const given = (await t.data()) as Float32Array;
    t.dispose();
    out.set(await relevanceScores(lm, tokenizer, actions, given, 1), i);
  }
  return out;
}
