/**
 * The BPE merge loop on one chunk's bytes, and the pair key the rank tables use. Kept apart from the
 * tokenizer class because training (train-bpe.ts) shares the key and tests drive the loop directly.
 */
import { MinHeap2 } from './min-heap.ts';
import { FIRST_MERGE_ID } from './special-tokens.ts';

/** Packs a pair of ids (< 65536 each) into one Map key. */
export function pairKey(a: number, b: number): number {
  return a * 65536 + b;
}

/**
 * BPE on one chunk's bytes: repeatedly merge the adjacent pair with the lowest rank, leftmost
 * first. A doubly linked list over positions plus a heap of candidate pairs keyed by
 * (rank, position) makes this O(n log n), so even a huge chunk (a long run of spaces or a pasted
 * blob without spaces) encodes quickly. Stale heap entries (a side already merged away) are
 * skipped when popped. Applying candidates in heap order equals the classic "merge all
 * occurrences of the best pair, repeat" algorithm because a newly created pair always has a
 * higher rank than the merge that created it.
 */
export function applyMerges(
  bytes: Uint8Array,
  ranks: ReadonlyMap<number, number>,
  mergeIds?: ArrayLike<number>,
  byteIds?: ArrayLike<number>,
): number[] {
  const n = bytes.length;
  if (n < 2) return byteIds ? Array.from(bytes, (b) => byteIds[b]) : Array.from(bytes);
  const ids = new Int32Array(n); // -1 marks a position merged into its left neighbour
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const heap = new MinHeap2();
  for (let i = 0; i < n; i++) {
    ids[i] = byteIds ? byteIds[bytes[i]] : bytes[i];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  for (let i = 0; i + 1 < n; i++) {
    const rank = ranks.get(pairKey(ids[i], ids[i + 1]));
    if (rank !== undefined) heap.push(rank, i);
  }
  while (heap.size > 0) {
    const rank = heap.topPrimary;
    const i = heap.topSecondary;
    heap.pop();
    if (ids[i] === -1) continue;
    const j = next[i];
    if (j === -1 || ranks.get(pairKey(ids[i], ids[j])) !== rank) continue;

    ids[i] = mergeIds ? mergeIds[rank] : FIRST_MERGE_ID + rank;
    ids[j] = -1;
    next[i] = next[j];
    if (next[j] !== -1) prev[next[j]] = i;

    const p = prev[i];
    if (p !== -1) {
      const r = ranks.get(pairKey(ids[p], ids[i]));
      if (r !== undefined) heap.push(r, p);
    }
    const q = next[i];
    if (q !== -1) {
      const r = ranks.get(pairKey(ids[i], ids[q]));
      if (r !== undefined) heap.push(r, i);
    }
  }
  const out: number[] = [];
  for (let i = 0; i !== -1; i = next[i]) out.push(ids[i]);
  return out;
}
