/**
 * Byte-level BPE tokenizer (the GPT-2 idea, in our own small file format).
 *
 * Vocabulary: ids 0..255 are the raw bytes, 256..261 the special tokens (special-tokens.ts),
 * and from 262 on, merge i (a pair of earlier ids) is token 262 + i. Text is turned into bytes
 * with WTF-8 (wtf8.ts), so every JS string, lone surrogates included, round-trips exactly and no
 * character is ever "unknown".
 *
 * Security property: `encode` never produces a special-token id. A user typing "<|assistant|>"
 * gets the ordinary byte tokens of that text, so plain text cannot forge a role switch or an end
 * of turn; special ids are only inserted by the chat template (chat-template.ts).
 */
import { createHash } from 'node:crypto';
import { MinHeap2 } from './min-heap.ts';
import { PRETOKENIZER_NAME, pretokenize } from './pretokenize.ts';
import {
  BYTE_TOKEN_COUNT,
  FIRST_MERGE_ID,
  MAX_VOCAB_SIZE,
  SPECIAL_TOKEN_IDS,
  SPECIAL_TOKEN_TEXTS,
  type SpecialTokenIds,
  isSpecialTokenId,
} from './special-tokens.ts';
import { decodeWtf8, encodeWtf8 } from './wtf8.ts';

const TOKENIZER_FORMAT = 'rlhf-chat-bpe';
const TOKENIZER_VERSION = 1;

/** A learned merge: the two token ids whose concatenation becomes a new token. */
export type MergePair = readonly [number, number];

/** The file format (`toJSON`). Merge i creates token id FIRST_MERGE_ID + i. */
interface TokenizerJSON {
  format: typeof TOKENIZER_FORMAT;
  version: typeof TOKENIZER_VERSION;
  pretokenizer: string;
  specialTokens: string[];
  merges: [number, number][];
}

interface DecodeOptions {
  /** Leave special tokens out of the text (default false: they appear as e.g. "<|eot|>"). */
  skipSpecial?: boolean;
}

/** Packs a pair of ids (< 65536 each) into one Map key. */
export function pairKey(a: number, b: number): number {
  return a * 65536 + b;
}

// Chunks repeat a lot in natural text (words), so their encodings are cached. The cache is
// bounded because a server encodes arbitrary user text for as long as it runs.
const MAX_CACHED_CHUNK_LENGTH = 64;
const MAX_CACHE_ENTRIES = 200_000;

export class Tokenizer {
  /** Number of token ids: 256 bytes + special tokens + merges. */
  readonly vocabSize: number;
  readonly special: SpecialTokenIds = SPECIAL_TOKEN_IDS;
  /** sha256 (hex) of the canonical JSON: identifies the vocabulary a model was trained with. */
  readonly hash: string;

  private readonly merges: readonly MergePair[];
  /** pairKey(a, b) -> merge rank (index in `merges`); lower rank = merged earlier. */
  private readonly ranks = new Map<number, number>();
  private readonly tokenBytes: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();

  /** Builds a tokenizer from merges; throws if they are not a valid merge list. */
  constructor(merges: readonly MergePair[]) {
    validateMerges(merges);
    this.merges = merges.map(([a, b]) => [a, b] as const);
    this.vocabSize = FIRST_MERGE_ID + merges.length;

    for (let b = 0; b < BYTE_TOKEN_COUNT; b++) this.tokenBytes.push(Uint8Array.of(b));
    for (const text of SPECIAL_TOKEN_TEXTS) this.tokenBytes.push(encodeWtf8(text));
    this.merges.forEach(([a, b], rank) => {
      this.ranks.set(pairKey(a, b), rank);
      const left = this.tokenBytes[a];
      const right = this.tokenBytes[b];
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left, 0);
      joined.set(right, left.length);
      this.tokenBytes.push(joined);
    });

    this.hash = createHash('sha256').update(JSON.stringify(this.toJSON())).digest('hex');
  }

  /** Text -> token ids. Never returns special-token ids (see the file comment). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const out: number[] = [];
    for (const chunk of pretokenize(text)) {
      let ids = this.cache.get(chunk);
      if (ids === undefined) {
        ids = applyMerges(encodeWtf8(chunk), this.ranks);
        if (chunk.length <= MAX_CACHED_CHUNK_LENGTH) {
          if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
          this.cache.set(chunk, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
    return out;
  }

  /**
   * Token ids -> text. Bytes that are not valid WTF-8 (e.g. a multibyte character cut in half
   * at the end of model output) become U+FFFD; this never throws for in-range ids. Throws a
   * RangeError for ids outside the vocabulary, which are a caller bug.
   */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skipSpecial = opts.skipSpecial ?? false;
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      this.checkId(ids[i], i);
      if (!(skipSpecial && isSpecialTokenId(ids[i]))) length += this.tokenBytes[ids[i]].length;
    }
    const bytes = new Uint8Array(length);
    let offset = 0;
    for (const id of ids) {
      if (skipSpecial && isSpecialTokenId(id)) continue;
      bytes.set(this.tokenBytes[id], offset);
      offset += this.tokenBytes[id].length;
    }
    return decodeWtf8(bytes);
  }

  /** The bytes a token stands for (a copy). Special tokens give their literal text, e.g. "<|user|>". */
  tokenToBytes(id: number): Uint8Array {
    this.checkId(id);
    return this.tokenBytes[id].slice();
  }

  isSpecial(id: number): boolean {
    return isSpecialTokenId(id);
  }

  toJSON(): TokenizerJSON {
    // Fixed key order: JSON.stringify of this object is the canonical form that `hash` covers.
    return {
      format: TOKENIZER_FORMAT,
      version: TOKENIZER_VERSION,
      pretokenizer: PRETOKENIZER_NAME,
      specialTokens: [...SPECIAL_TOKEN_TEXTS],
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  /** Loads a tokenizer file (parsed JSON); throws an Error saying what is wrong if it is malformed. */
  static fromJSON(obj: unknown): Tokenizer {
    const fail = (what: string): never => {
      throw new Error(`invalid tokenizer file: ${what}`);
    };
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail('expected a JSON object');
    const o = obj as Record<string, unknown>;
    const known = ['format', 'version', 'pretokenizer', 'specialTokens', 'merges'];
    for (const key of Object.keys(o)) {
      if (!known.includes(key)) fail(`unknown field "${key}"`);
    }
    if (o.format !== TOKENIZER_FORMAT) {
      fail(`"format" is ${JSON.stringify(o.format)}, expected "${TOKENIZER_FORMAT}"`);
    }
    if (o.version !== TOKENIZER_VERSION) {
      fail(`unsupported version ${JSON.stringify(o.version)} (this code reads version ${TOKENIZER_VERSION})`);
    }
    if (o.pretokenizer !== PRETOKENIZER_NAME) {
      fail(`"pretokenizer" is ${JSON.stringify(o.pretokenizer)}, this code implements "${PRETOKENIZER_NAME}"`);
    }
    if (
      !Array.isArray(o.specialTokens) ||
      o.specialTokens.length !== SPECIAL_TOKEN_TEXTS.length ||
      o.specialTokens.some((t, i) => t !== SPECIAL_TOKEN_TEXTS[i])
    ) {
      fail(`"specialTokens" must be exactly ${JSON.stringify(SPECIAL_TOKEN_TEXTS)} (ids 256..)`);
    }
    if (!Array.isArray(o.merges)) fail('"merges" must be an array of [id, id] pairs');
    const merges = o.merges as unknown[];
    merges.forEach((m, i) => {
      if (!Array.isArray(m) || m.length !== 2) fail(`merges[${i}] must be a pair [id, id]`);
    });
    try {
      return new Tokenizer(merges as MergePair[]);
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  private checkId(id: number, position?: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      const where = position === undefined ? '' : ` at position ${position}`;
      throw new RangeError(`token id ${id}${where} is outside the vocabulary 0..${this.vocabSize - 1}`);
    }
  }
}

/**
 * Checks that merge i only uses ids that exist before token FIRST_MERGE_ID + i: byte tokens or
 * earlier merges, never special tokens, and no pair twice. The "earlier" rule also guarantees
 * what `applyMerges` relies on: a pair containing a token made by merge r has a rank above r.
 */
function validateMerges(merges: readonly MergePair[]): void {
  if (FIRST_MERGE_ID + merges.length > MAX_VOCAB_SIZE) {
    throw new Error(`${merges.length} merges give a vocabulary above the maximum of ${MAX_VOCAB_SIZE}`);
  }
  const seen = new Set<number>();
  merges.forEach((pair, i) => {
    const ownId = FIRST_MERGE_ID + i;
    for (const id of pair) {
      if (!Number.isInteger(id) || id < 0) {
        throw new Error(`merges[${i}] contains ${JSON.stringify(id)}, which is not a token id`);
      }
      if (id >= ownId) {
        throw new Error(`merges[${i}] (token ${ownId}) references unknown id ${id}: merges may only use bytes and earlier merges`);
      }
      if (isSpecialTokenId(id)) {
        throw new Error(`merges[${i}] references special token id ${id}; special tokens cannot be merged`);
      }
    }
    const key = pairKey(pair[0], pair[1]);
    if (seen.has(key)) throw new Error(`merges[${i}] repeats the pair [${pair[0]}, ${pair[1]}]`);
    seen.add(key);
  });
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
export function applyMerges(bytes: Uint8Array, ranks: ReadonlyMap<number, number>): number[] {
  const n = bytes.length;
  if (n < 2) return Array.from(bytes);
  const ids = new Int32Array(n); // -1 marks a position merged into its left neighbour
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const heap = new MinHeap2();
  for (let i = 0; i < n; i++) {
    ids[i] = bytes[i];
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

    ids[i] = FIRST_MERGE_ID + rank;
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
