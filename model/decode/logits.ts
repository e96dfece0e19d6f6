/**
 * Logit processing on one row of next-token logits (a Float32Array of length V), in place where the
 * name says so. Done in JS: a row is a few thousand numbers, and the rules (penalties, n-gram bans,
 * nucleus cut) are easier to get exactly right here than as tensor ops.
 */
import type { Rng } from './rng.ts';

/**
 * CTRL repetition penalty (Keskar et al. 2019, as in HF transformers): for every token already in
 * `history`, a positive logit is divided by `penalty` and a negative one multiplied, so the token always
 * becomes less likely when penalty > 1 (dividing a negative logit would make it *more* likely).
 */
export function applyRepetitionPenalty(logits: Float32Array, history: Iterable<number>, penalty: number, exempt: ReadonlySet<number>): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of history) {
    if (seen.has(id) || exempt.has(id)) continue;
    seen.add(id);
    const l = logits[id];
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** Bans every token that would complete an n-gram already present in `seq` (size n). */
export function banRepeatedNgrams(logits: Float32Array, seq: readonly number[], n: number): void {
  if (n <= 0 || seq.length < n) return;
  const prefixStart = seq.length - (n - 1);
  for (let i = 0; i + n <= seq.length; i++) {
    let match = true;
    for (let j = 0; j < n - 1; j++) {
      if (seq[i + j] !== seq[prefixStart + j]) {
        match = false;
        break;
      }
    }
    if (match) logits[seq[i + n - 1]] = -Infinity;
  }
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * log(sum(exp(row))), in float64: the softmax's normaliser, so that one token's log-probability is
 * row[t] - logSumExp(row) without building the whole log-softmax row.
 */
export function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum);
}

/** log-softmax of a row, in float64 for the normaliser. */
export function logSoftmax(row: Float32Array): Float64Array {
  const lse = logSumExp(row);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topKIndices(row: ArrayLike<number>, k: number): number[] {
  const n = row.length;
  if (k >= n) return Array.from({ length: n }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  // One pass keeping the best k in order. Runs per row per decoding step (V values), so the common
  // case, a value no better than the k-th, is a single comparison; a later index never wins a tie.
  const top: number[] = [];
  let worst = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = row[i];
    if (top.length === k && !(v > worst)) continue;
    let at = top.length;
    while (at > 0 && row[top[at - 1]] < v) at--;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
    worst = row[top[top.length - 1]];
  }
  return top;
}

/**
 * Samples a token: temperature, then top-k, then top-p (nucleus), then a draw from `rng`.
 * temperature 0 is argmax, so greedy is the same sampler at temperature 0.
 */
export function sampleToken(logits: Float32Array, opts: { temperature: number; top_k: number; top_p: number }, rng: Rng): number {
  if (opts.temperature === 0) return argmax(logits);
  const k = opts.top_k > 0 ? Math.min(opts.top_k, logits.length) : logits.length;
  const candidates = topKIndices(logits, k); // sorted, most likely first
  const max = logits[candidates[0]];
  if (max === -Infinity) return candidates[0];
  const weights = candidates.map((i) => Math.exp((logits[i] - max) / opts.temperature));
  let total = weights.reduce((a, b) => a + b, 0);
  let keep = weights.length;
  if (opts.top_p < 1) {
    let cum = 0;
    for (let i = 0; i < weights.length; i++) {
      cum += weights[i] / total;
      if (cum >= opts.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = weights.slice(0, keep).reduce((a, b) => a + b, 0);
  }
  let r = rng() * total;
  for (let i = 0; i < keep; i++) {
    r -= weights[i];
    if (r <= 0) return candidates[i];
  }
  return candidates[keep - 1];
}
