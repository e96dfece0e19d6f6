/** The per-row logit rules every strategy applies before choosing: bans, repetition penalty, n-gram bans. */
import { applyRepetitionPenalty, banRepeatedNgrams } from './logits.ts';
import type { DecodeOptions } from './options.ts';

export function processLogits(
  logits: Float32Array,
  history: readonly number[],
  opts: DecodeOptions,
  exempt: ReadonlySet<number>,
  banned: readonly number[],
): Float32Array {
  for (const id of banned) logits[id] = -Infinity;
  applyRepetitionPenalty(logits, history, opts.repetition_penalty, exempt);
  banRepeatedNgrams(logits, history, opts.no_repeat_ngram_size);
  return logits;
}
