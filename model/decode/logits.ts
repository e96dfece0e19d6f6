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

/** log-softmax of a row, in float64 for the normaliser. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topKIndices(row: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  if (k >= row.length) return idx.sort((a, b) => row[b] - row[a] || a - b);
  // Partial selection keeps this O(V log k) for the usual small k.
  const heap: number[] = [];
  const worse = (a: number, b: number) => row[a] < row[b] || (row[a] === row[b] && a > b);
  for (const i of idx) {
    if (heap.length < k) {
      heap.push(i);
      if (heap.length === k) heap.sort((a, b) => (worse(a, b) ? -1 : 1));
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      // restore order by sifting the new element up (heap kept sorted ascending by quality)
      for (let j = 0; j + 1 < heap.length && worse(heap[j + 1], heap[j]); j++) [heap[j], heap[j + 1]] = [heap[j + 1], heap[j]];
    }
  }
  return heap.reverse();
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
