/**
 * Logit processing on one row of next-token logits (a Float32Array of length V), in place where the
 * name says so. Done in JS: a row is a few thousand numbers, and the rules (penalties, n-gram bans,
 * ranking) are easier to get exactly right here than as tensor ops. Drawing a token: sample-token.ts.
 */

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
  // The best value in a local: reading row[best] back each time made this 1.5x slower.
  let best = 0;
  let bestValue = row[0];
  for (let i = 1; i < row.length; i++) {
    const v = row[i];
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}

/** `row` copied into `buffer` when it has the row's length, else into a new array; returns the copy. */
export function copyInto(buffer: Float32Array | null, row: Float32Array): Float32Array {
  const out = buffer !== null && buffer.length === row.length ? buffer : new Float32Array(row.length);
  out.set(row);
  return out;
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

/** Rows this long or shorter can be sorted by packed keys (index in the low 17 bits of a float64). */
const PACKED_INDEX = 2 ** 17;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Indices of `row` by value, largest first, ties by lower index (NaN last). Each value becomes a key
 * that sorts the same way, its float32 bits mapped to an order-preserving uint32 and the index packed
 * below, and the keys go through one native numeric sort: for 4,096 logits ~0.34 ms, against ~1.1 ms
 * for sorting the indices with a comparator.
 */
export function indicesByValue(row: ArrayLike<number>): number[] {
  const n = row.length;
  // Vocabularies stop at 65,536 (model/gpt/config.ts).
  if (n > PACKED_INDEX) throw new RangeError(`cannot rank a row of ${n} values (at most ${PACKED_INDEX})`);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = row[i];
    let order: number; // ascending with v; 0 for NaN, so that it sorts last once inverted
    if (v !== v) order = 0;
    else {
      f32[0] = v === 0 ? 0 : v; // -0 ties with +0
      const bits = u32[0];
      order = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    }
    keys[i] = (0xffffffff - order) * PACKED_INDEX + i;
  }
  keys.sort();
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = keys[i] % PACKED_INDEX;
  return out;
}

/** Beyond this many, the top k come from one sort of the whole row rather than the insertion pass. */
const INSERTION_MAX_K = 64;

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topKIndices(row: ArrayLike<number>, k: number): number[] {
  const n = row.length;
  if (k > INSERTION_MAX_K || k >= n) return indicesByValue(row).slice(0, k);
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
