/**
 * Byte-level BPE tokenizer (the GPT-2 idea).
 *
 * Our own vocabularies (file version 1): ids 0..255 are the raw bytes, 256..261 the special tokens
 * (special-tokens.ts), and from 262 on, merge i (a pair of earlier ids) is token 262 + i. A vocabulary
 * from elsewhere (file version 2, e.g. an imported GPT-2) places the same three kinds of token at any
 * ids: a token id for each byte, merges in rank order each naming the id it makes, and special tokens
 * (the six chat tokens plus any others the vocabulary had, such as GPT-2's <|endoftext|>). Text is
 * turned into bytes with WTF-8 (wtf8.ts), so every JS string, lone surrogates included, round-trips
 * exactly and no character is ever "unknown".
 *
 * Security property: `encode` never produces a special-token id. A user typing "<|assistant|>"
 * gets the ordinary byte tokens of that text, so plain text cannot forge a role switch or an end
 * of turn; special ids are only inserted by the chat template (chat-template.ts).
 */
import { createHash } from 'node:crypto';
import { applyMerges, pairKey } from './apply-merges.ts';
import { PRETOKENIZER_NAME, isKnownPretokenizer, pretokenize } from './pretokenize.ts';
import {
  BYTE_TOKEN_COUNT,
  FIRST_MERGE_ID,
  SPECIAL_TOKEN_IDS,
  SPECIAL_TOKEN_TEXTS,
  type SpecialTokenIds,
} from './special-tokens.ts';
import { validateVocabulary, type MergePair, type VocabularyLayout } from './vocabulary-check.ts';
import { decodeWtf8, encodeWtf8 } from './wtf8.ts';

const TOKENIZER_FORMAT = 'rlhf-chat-bpe';
const TOKENIZER_VERSION = 1;
/** File version of a vocabulary with its own id layout (see the file comment). */
const TOKENIZER_VERSION_GENERAL = 2;

/** The file format of our own layout (`toJSON`). Merge i creates token id FIRST_MERGE_ID + i. */
export interface TokenizerJSON {
  format: typeof TOKENIZER_FORMAT;
  version: typeof TOKENIZER_VERSION;
  pretokenizer: string;
  specialTokens: string[];
  merges: [number, number][];
}

/** The file format of a vocabulary with its own id layout. */
interface GeneralTokenizerJSON {
  format: typeof TOKENIZER_FORMAT;
  version: typeof TOKENIZER_VERSION_GENERAL;
  pretokenizer: string;
  vocabSize: number;
  /** byteIds[b] is the token id of the single byte b. */
  byteIds: number[];
  /** Special tokens (never produced by `encode`); must include the six chat tokens. */
  specialTokens: { id: number; text: string }[];
  /** Merges in rank order: [left id, right id, id of the merged token]. */
  merges: [number, number, number][];
}

interface DecodeOptions {
  /** Leave special tokens out of the text (default false: they appear as e.g. "<|eot|>"). */
  skipSpecial?: boolean;
}

// Chunks repeat a lot in natural text (words), so their encodings are cached. The cache is
// bounded because a server encodes arbitrary user text for as long as it runs.
const MAX_CACHED_CHUNK_LENGTH = 64;
const MAX_CACHE_ENTRIES = 200_000;

const IDENTITY_BYTES: readonly number[] = Array.from({ length: BYTE_TOKEN_COUNT }, (_, b) => b);

/** Our own layout for `mergeCount` merges. */
function ownLayout(mergeCount: number): VocabularyLayout {
  return {
    pretokenizer: PRETOKENIZER_NAME,
    vocabSize: FIRST_MERGE_ID + mergeCount,
    byteIds: IDENTITY_BYTES,
    specialTokens: SPECIAL_TOKEN_TEXTS.map((text, i) => ({ id: BYTE_TOKEN_COUNT + i, text })),
    mergeIds: Array.from({ length: mergeCount }, (_, i) => FIRST_MERGE_ID + i),
  };
}

export class Tokenizer {
  /** Number of token ids. */
  readonly vocabSize: number;
  readonly special: SpecialTokenIds;
  /** sha256 (hex) of the canonical JSON: identifies the vocabulary a model was trained with. */
  readonly hash: string;
  /** Name of the pre-tokenizer (pretokenize.ts) that splits text before BPE. */
  readonly pretokenizer: string;

  private readonly merges: readonly MergePair[];
  private readonly layout: VocabularyLayout;
  /** True for our own layout (file version 1). */
  private readonly own: boolean;
  /** pairKey(a, b) -> merge rank (index in `merges`); lower rank = merged earlier. */
  private readonly ranks = new Map<number, number>();
  private readonly mergeIds: Int32Array;
  private readonly byteIds: Int32Array;
  private readonly specialIds = new Set<number>();
  private readonly tokenBytes: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();

  /**
   * Builds a tokenizer from merges (pairs of ids) in our own layout, or in `layout` (see
   * `fromVocabulary`); throws if they do not make a valid vocabulary.
   */
  constructor(merges: readonly MergePair[], layout?: VocabularyLayout) {
    this.layout = layout ?? ownLayout(merges.length);
    this.own = layout === undefined || isOwnLayout(layout, merges.length);
    validateVocabulary(merges, this.layout);
    this.merges = merges.map(([a, b]) => [a, b] as const);
    this.vocabSize = this.layout.vocabSize;
    this.pretokenizer = this.layout.pretokenizer;
    this.mergeIds = Int32Array.from(this.layout.mergeIds);
    this.byteIds = Int32Array.from(this.layout.byteIds);

    const bytes: (Uint8Array | undefined)[] = new Array(this.vocabSize);
    this.byteIds.forEach((id, b) => (bytes[id] = Uint8Array.of(b)));
    for (const { id, text } of this.layout.specialTokens) {
      bytes[id] = encodeWtf8(text);
      this.specialIds.add(id);
    }
    this.merges.forEach(([a, b], rank) => {
      this.ranks.set(pairKey(a, b), rank);
      const left = bytes[a]!;
      const right = bytes[b]!;
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left, 0);
      joined.set(right, left.length);
      bytes[this.mergeIds[rank]] = joined;
    });
    for (let id = 0; id < this.vocabSize; id++) this.tokenBytes.push(bytes[id]!);

    const byText = new Map(this.layout.specialTokens.map((t) => [t.text, t.id] as const));
    const role = (text: string) => byText.get(text)!;
    this.special = this.own
      ? SPECIAL_TOKEN_IDS
      : Object.freeze({
          bos: role('<|bos|>'),
          user: role('<|user|>'),
          assistant: role('<|assistant|>'),
          system: role('<|system|>'),
          eot: role('<|eot|>'),
          pad: role('<|pad|>'),
        });
    this.hash = createHash('sha256').update(JSON.stringify(this.toJSON())).digest('hex');
  }

  /**
   * A tokenizer with its own id layout (an imported vocabulary). When the layout turns out to be
   * ours, the result is the same as `new Tokenizer(merges)` (same file, same hash).
   */
  static fromVocabulary(v: { pretokenizer: string; vocabSize: number; byteIds: readonly number[]; specialTokens: readonly { id: number; text: string }[]; merges: readonly (readonly [number, number, number])[] }): Tokenizer {
    const merges = v.merges.map(([a, b]) => [a, b] as const);
    const layout: VocabularyLayout = { pretokenizer: v.pretokenizer, vocabSize: v.vocabSize, byteIds: v.byteIds, specialTokens: v.specialTokens, mergeIds: v.merges.map((m) => m[2]) };
    return isOwnLayout(layout, merges.length) ? new Tokenizer(merges) : new Tokenizer(merges, layout);
  }

  /** Text -> token ids. Never returns special-token ids (see the file comment). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const out: number[] = [];
    for (const chunk of pretokenize(text, this.pretokenizer)) {
      let ids = this.cache.get(chunk);
      if (ids === undefined) {
        ids = applyMerges(encodeWtf8(chunk), this.ranks, this.mergeIds, this.byteIds);
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
      if (!(skipSpecial && this.specialIds.has(ids[i]))) length += this.tokenBytes[ids[i]].length;
    }
    const bytes = new Uint8Array(length);
    let offset = 0;
    for (const id of ids) {
      if (skipSpecial && this.specialIds.has(id)) continue;
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
    return this.specialIds.has(id);
  }

  /** The whole vocabulary in the general form (also for our own layout), e.g. for exporting it. */
  vocabulary(): Omit<GeneralTokenizerJSON, 'format' | 'version'> {
    return {
      pretokenizer: this.pretokenizer,
      vocabSize: this.vocabSize,
      byteIds: Array.from(this.byteIds),
      specialTokens: this.layout.specialTokens.map(({ id, text }) => ({ id, text })),
      merges: this.merges.map(([a, b], i) => [a, b, this.mergeIds[i]]),
    };
  }

  toJSON(): TokenizerJSON | GeneralTokenizerJSON {
    // Fixed key order: JSON.stringify of this object is the canonical form that `hash` covers.
    if (!this.own) return { format: TOKENIZER_FORMAT, version: TOKENIZER_VERSION_GENERAL, ...this.vocabulary() };
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
    if (o.format !== TOKENIZER_FORMAT) {
      fail(`"format" is ${JSON.stringify(o.format)}, expected "${TOKENIZER_FORMAT}"`);
    }
    if (o.version === TOKENIZER_VERSION_GENERAL) return generalFromJSON(o, fail);
    const known = ['format', 'version', 'pretokenizer', 'specialTokens', 'merges'];
    for (const key of Object.keys(o)) {
      if (!known.includes(key)) fail(`unknown field "${key}"`);
    }
    if (o.version !== TOKENIZER_VERSION) {
      fail(`unsupported version ${JSON.stringify(o.version)} (this code reads versions ${TOKENIZER_VERSION} and ${TOKENIZER_VERSION_GENERAL})`);
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

function generalFromJSON(o: Record<string, unknown>, fail: (what: string) => never): Tokenizer {
  const known = ['format', 'version', 'pretokenizer', 'vocabSize', 'byteIds', 'specialTokens', 'merges'];
  for (const key of Object.keys(o)) if (!known.includes(key)) fail(`unknown field "${key}"`);
  if (typeof o.pretokenizer !== 'string' || !isKnownPretokenizer(o.pretokenizer)) fail(`unknown "pretokenizer" ${JSON.stringify(o.pretokenizer)}`);
  if (!Number.isInteger(o.vocabSize)) fail('"vocabSize" must be an integer');
  if (!Array.isArray(o.byteIds) || o.byteIds.length !== BYTE_TOKEN_COUNT) fail(`"byteIds" must list ${BYTE_TOKEN_COUNT} ids`);
  if (!Array.isArray(o.specialTokens) || o.specialTokens.some((t) => typeof t?.text !== 'string' || !Number.isInteger(t?.id))) {
    fail('"specialTokens" must be an array of { id, text }');
  }
  if (!Array.isArray(o.merges) || o.merges.some((m) => !Array.isArray(m) || m.length !== 3)) fail('"merges" must be an array of [id, id, id] triples');
  try {
    return Tokenizer.fromVocabulary(o as unknown as GeneralTokenizerJSON);
  } catch (e) {
    return fail((e as Error).message);
  }
}

function isOwnLayout(layout: VocabularyLayout, mergeCount: number): boolean {
  const own = ownLayout(mergeCount);
  return (
    layout.pretokenizer === own.pretokenizer &&
    layout.vocabSize === own.vocabSize &&
    layout.byteIds.every((id, b) => id === b) &&
    layout.specialTokens.length === own.specialTokens.length &&
    layout.specialTokens.every((t, i) => t.id === own.specialTokens[i].id && t.text === own.specialTokens[i].text) &&
    layout.mergeIds.every((id, i) => id === own.mergeIds[i])
  );
}
