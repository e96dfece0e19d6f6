/**
 * BPE training: learn merges from text until the vocabulary reaches `vocabSize`.
 *
 * The text is pre-tokenized (pretokenize.ts) and only distinct chunks with their frequencies are
 * kept ("words"), so a few MB of text becomes tens of thousands of short byte sequences. Then,
 * repeatedly, the most frequent adjacent pair is merged into a new token.
 *
 * Incremental counting: pair counts are kept in a Map and, per pair, the set of words containing
 * it. A merge only revisits the words that contain the merged pair and adjusts the counts of the
 * pairs in those words; a lazy max-heap gives the next best pair (entries whose count has since
 * changed are skipped when popped). This avoids recounting the corpus for every merge.
 *
 * Determinism: the best pair is the highest count, ties broken by the smallest (left id, right id),
 * and words are visited in a fixed order, so the same texts always give the same merges (and hash).
 */
import { pairKey } from './apply-merges.ts';
import { Tokenizer } from './bpe.ts';
import type { MergePair } from './vocabulary-check.ts';
import { MinHeap2 } from './min-heap.ts';
import { pretokenize } from './pretokenize.ts';
import { FIRST_MERGE_ID, MAX_VOCAB_SIZE, SPECIAL_TOKEN_TEXTS } from './special-tokens.ts';
import { encodeWtf8 } from './wtf8.ts';

interface TrainBpeOptions {
  /** Target vocabulary size, including the 256 byte tokens and the special tokens. */
  vocabSize: number;
  /**
   * A pair must occur at least this many times to be merged (default 2). Training stops early
   * when no pair is that frequent, so the result can be smaller than `vocabSize` on tiny corpora.
   */
  minFrequency?: number;
}

export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): Tokenizer {
  const { vocabSize } = opts;
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGE_ID || vocabSize > MAX_VOCAB_SIZE) {
    throw new Error(
      `vocabSize must be an integer from ${FIRST_MERGE_ID} (256 bytes + ${SPECIAL_TOKEN_TEXTS.length} special tokens) to ${MAX_VOCAB_SIZE}, got ${vocabSize}`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new Error(`minFrequency must be an integer >= 1, got ${minFrequency}`);
  }

  // 1. Distinct chunks and how often each occurs.
  const chunkCounts = new Map<string, number>();
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError(`trainBpe expects strings, got ${typeof text}`);
    for (const chunk of pretokenize(text)) chunkCounts.set(chunk, (chunkCounts.get(chunk) ?? 0) + 1);
  }
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [chunk, count] of chunkCounts) {
    const bytes = encodeWtf8(chunk);
    if (bytes.length < 2) continue; // nothing to merge inside
    words.push(Array.from(bytes));
    freqs.push(count);
  }
  chunkCounts.clear();

  // 2. Initial pair counts and, per pair, the words it occurs in.
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  words.forEach((word, w) => {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i], word[i + 1]);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + freqs[w]);
      let set = pairWords.get(key);
      if (set === undefined) pairWords.set(key, (set = new Set()));
      set.add(w);
    }
  });
  // Max-heap by count = min-heap by -count; secondary key = pairKey, so ties go to the smallest pair.
  const heap = new MinHeap2();
  for (const [key, count] of pairCounts) heap.push(-count, key);

  // 3. Merge loop.
  const merges: MergePair[] = [];
  const mergeCount = vocabSize - FIRST_MERGE_ID;
  while (merges.length < mergeCount && heap.size > 0) {
    const count = -heap.topPrimary;
    const key = heap.topSecondary;
    heap.pop();
    if (pairCounts.get(key) !== count) continue; // stale entry
    if (count < minFrequency) break; // the best pair is too rare: so is every other

    const a = Math.floor(key / 65536);
    const b = key % 65536;
    const newId = FIRST_MERGE_ID + merges.length;
    merges.push([a, b]);

    const countBefore = new Map<number, number>(); // pairs touched by this merge -> old count
    const adjust = (k: number, delta: number): void => {
      const old = pairCounts.get(k) ?? 0;
      if (!countBefore.has(k)) countBefore.set(k, old);
      const updated = old + delta;
      if (updated === 0) pairCounts.delete(k);
      else pairCounts.set(k, updated);
    };

    const affected = [...(pairWords.get(key) ?? [])].sort((x, y) => x - y);
    pairWords.delete(key);
    for (const w of affected) {
      const word = words[w];
      const freq = freqs[w];
      for (let i = 0; i + 1 < word.length; i++) adjust(pairKey(word[i], word[i + 1]), -freq);
      const merged: number[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(newId);
          i++;
        } else {
          merged.push(word[i]);
        }
      }
      words[w] = merged;
      for (let i = 0; i + 1 < merged.length; i++) {
        const k = pairKey(merged[i], merged[i + 1]);
        adjust(k, freq);
        if (k === key) continue;
        let set = pairWords.get(k);
        if (set === undefined) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
    }
    for (const [k, old] of countBefore) {
      const now = pairCounts.get(k) ?? 0;
      if (now !== old && now > 0) heap.push(-now, k);
      if (now === 0) pairWords.delete(k);
    }
  }
  return new Tokenizer(merges);
}
