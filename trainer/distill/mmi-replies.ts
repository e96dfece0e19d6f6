/**
 * Replies that maximise mutual information with their prompt (Li et al. 2016, "MMI-antiLM"): for the
 * first `antiLmTokens` tokens the next token is
 *   argmax_t  log p(t | prompt, reply so far) - lambda * log p(t | empty prompt, reply so far),
 * after that plain greedy. The second term is the same model as a language model of replies alone:
 * a reply that fits any prompt ("I don't know.") loses what it gains from being likely everywhere.
 * Only the opening tokens are penalised: later in a reply the unconditional model is what keeps it
 * grammatical, and penalising it there yields word salad. The end-of-turn is never penalised. And
 * only tokens the model itself finds plausible after this prompt compete (probability at least
 * `plausibility` times the best one's, the constraint of contrastive decoding, Li et al. 2023):
 * without it the anti-LM term favours tokens that are rare everywhere, such as stray punctuation.
 *
 * These replies are the targets of the `distill` stage, which teaches the policy to answer this way
 * with plain greedy and beam search.
 */
import type { InferenceModel } from '../../model/inference/inference-model.ts';
import { applyRepetitionPenalty, argmax, logSoftmax } from '../../model/decode/logits.ts';

export interface MmiOptions {
  /** Weight of the reply-only language model (0 = greedy). */
  lambda: number;
  /** Reply tokens decoded with the anti-LM term; the rest are greedy. */
  antiLmTokens: number;
  /** Tokens below this share of the most probable token's probability are not chosen (0 = any). */
  plausibility: number;
  /** CTRL repetition penalty on tokens already in the reply (1 = off). */
  repetitionPenalty: number;
  maxNewTokens: number;
  /** Prompts decoded together. */
  batchSize: number;
}

export interface MmiReply {
  ids: number[];
  /** Whether the reply ended its turn within maxNewTokens. */
  ended: boolean;
}

/**
 * One reply per prompt (token ids, each fitting the model's window with maxNewTokens to spare).
 * `emptyPrompt` is the rendered prompt with an empty user turn; `banned` ids are never chosen;
 * `exempt` ids are never penalised for repetition.
 */
export async function mmiReplies(
  model: InferenceModel,
  prompts: readonly (readonly number[])[],
  emptyPrompt: readonly number[],
  control: { eotId: number; banned: readonly number[]; exempt: ReadonlySet<number> },
  o: MmiOptions,
): Promise<MmiReply[]> {
  const out: MmiReply[] = [];
  for (let start = 0; start < prompts.length; start += o.batchSize) {
    const batch = prompts.slice(start, start + o.batchSize).map((p) => [...p]);
    let given = await model.prefill(batch);
    // The reply-only model is needed for the opening tokens only; its cache is dropped after them.
    let alone = o.antiLmTokens > 0 && o.lambda !== 0 ? await model.prefill(batch.map(() => [...emptyPrompt])) : null;
    const replies = batch.map(() => [] as number[]);
    const ended = batch.map(() => false);
    try {
      for (let t = 0; t < o.maxNewTokens; t++) {
        const next = batch.map((_, i) => {
          if (ended[i]) return control.eotId; // a finished row idles on end-of-turn until the batch ends
          const logits = Float32Array.from(given.logits[i]); // (V)
          for (const id of control.banned) logits[id] = -Infinity;
          applyRepetitionPenalty(logits, replies[i], o.repetitionPenalty, control.exempt);
          const score = logSoftmax(logits); // (V)
          if (alone) {
            const replyLm = logSoftmax(alone.logits[i]); // (V)
            const floor = o.plausibility > 0 ? score[argmax(score)] + Math.log(o.plausibility) : -Infinity;
            for (let v = 0; v < score.length; v++) {
              if (score[v] < floor) score[v] = -Infinity;
              else if (v !== control.eotId) score[v] -= o.lambda * replyLm[v];
            }
          }
          const best = argmax(score);
          if (best === control.eotId) ended[i] = true;
          else replies[i].push(best);
          return best;
        });
        if (ended.every(Boolean)) break;
        given = await model.step(given.cache, next);
        if (alone && t + 1 >= o.antiLmTokens) {
          alone.cache.dispose();
          alone = null;
        }
        if (alone) alone = await model.step(alone.cache, next);
      }
    } finally {
      given.cache.dispose();
      alone?.cache.dispose();
    }
    replies.forEach((ids, i) => out.push({ ids, ended: ended[i] }));
  }
  return out;
}
