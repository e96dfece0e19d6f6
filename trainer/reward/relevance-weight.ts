/**
 * The reward model's relevance term: its score of a reply is the scalar head's plus `weight` times
 * the reply's relevance to its prompt under the policy the reward model was started from
 * (relevance.ts). The head alone learns the degenerate kinds (empty, repeated, truncated replies)
 * but stays near chance on "the true reply against another conversation's", which needs the prompt;
 * relevance separates those. The weight is chosen on training pairs (never the held-out ones): the
 * grid value whose combined score orders the most pairs right, the smallest on ties, 0 when the term
 * does not help.
 */
import type { GPT } from '../../model/gpt/gpt.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
import type { PreferencePair } from './pairs.ts';
import { replyRelevance } from './relevance.ts';

export const RELEVANCE_WEIGHTS = [0, 0.5, 1, 2, 4, 8] as const;

export interface PairScores {
  chosen: ArrayLike<number>;
  rejected: ArrayLike<number>;
}

/** Relevance of each pair's chosen and rejected reply under `lm`. */
export async function pairRelevance(lm: GPT, tokenizer: Tokenizer, pairs: readonly PreferencePair[]): Promise<PairScores> {
  const prompts = pairs.map((p) => p.prompt);
  return {
    chosen: await replyRelevance(lm, tokenizer, prompts, pairs.map((p) => p.chosen)),
    rejected: await replyRelevance(lm, tokenizer, prompts, pairs.map((p) => p.rejected)),
  };
}

/** head + weight * relevance, per pair side. */
export function combineScores(head: PairScores, relevance: PairScores, weight: number): PairScores {
  const mix = (h: ArrayLike<number>, r: ArrayLike<number>) => Float64Array.from(h, (x, i) => x + weight * r[i]);
  return { chosen: mix(head.chosen, relevance.chosen), rejected: mix(head.rejected, relevance.rejected) };
}

function accuracy(s: PairScores): number {
  let right = 0;
  for (let i = 0; i < s.chosen.length; i++) right += s.chosen[i] > s.rejected[i] ? 1 : 0;
  return s.chosen.length ? right / s.chosen.length : 0;
}

/** The weight (from `grid`) with the best accuracy on these pairs, and every weight's accuracy. */
export function fitRelevanceWeight(head: PairScores, relevance: PairScores, grid: readonly number[] = RELEVANCE_WEIGHTS): { weight: number; accuracy: Record<string, number> } {
  if (head.chosen.length === 0) throw new Error('fitting the relevance weight needs at least one pair');
  let best = { weight: 0, acc: -1 };
  const table: Record<string, number> = {};
  for (const w of [...grid].sort((a, b) => a - b)) {
    const acc = accuracy(combineScores(head, relevance, w));
    table[String(w)] = acc;
    if (acc > best.acc) best = { weight: w, acc };
  }
  return { weight: best.weight, accuracy: table };
}
