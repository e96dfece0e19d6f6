/**
 * Our tokenizer to and from the Hugging Face formats: `tokenizer.json` (the `tokenizers` library's
 * schema: a byte-level BPE model, its pre-tokenizer and decoder, and added tokens) and GPT-2's
 * original `vocab.json` + `merges.txt`. Special tokens become added tokens; every other token is
 * spelled in GPT-2's byte-level alphabet (byte-unicode.ts).
 */
import {
  GPT2_PRETOKENIZER_NAME,
  PRETOKENIZER_NAME,
  PRETOKENIZER_PATTERNS,
  SPECIAL_TOKEN_TEXTS,
  Tokenizer,
} from '../tokenizer/index.ts';
import { bytesToToken, tokenToBytes } from './byte-unicode.ts';

/** A directory's tokenizer is not a GPT-2-style byte-level BPE; the message says what differs. */
export class HfFormatError extends Error {
  override readonly name = 'HfFormatError';
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

function preTokenizerJson(name: string): unknown {
  if (name === GPT2_PRETOKENIZER_NAME) return BYTE_LEVEL;
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: PRETOKENIZER_PATTERNS[name].source }, behavior: 'Isolated', invert: false },
      { ...BYTE_LEVEL, use_regex: false },
    ],
  };
}

/** tokenizer.json (the `tokenizers` schema) for our tokenizer. */
export function toHfTokenizerJson(tok: Tokenizer): Record<string, unknown> {
  const v = tok.vocabulary();
  const spelled: string[] = new Array(v.vocabSize);
  const specialIds = new Set(v.specialTokens.map((t) => t.id));
  for (let id = 0; id < v.vocabSize; id++) spelled[id] = specialIds.has(id) ? '' : bytesToToken(tok.tokenToBytes(id));
  for (const t of v.specialTokens) spelled[t.id] = t.text;
  // A null-prototype object: a token spelled "__proto__" is then an ordinary key.
  const vocab: Record<string, number> = Object.create(null);
  spelled.forEach((s, id) => {
    if (s in vocab) throw new HfFormatError(`tokens ${vocab[s]} and ${id} are both spelled ${JSON.stringify(s)}; tokenizer.json cannot hold both`);
    vocab[s] = id;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...v.specialTokens]
      .sort((a, b) => a.id - b.id)
      .map((t) => ({ id: t.id, content: t.text, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: preTokenizerJson(v.pretokenizer),
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: v.merges.map(([a, b]) => `${spelled[a]} ${spelled[b]}`),
    },
  };
}

/** What `fromHfVocabulary` made, and what it had to add (for the log). */
export interface ImportedTokenizer {
  tokenizer: Tokenizer;
  /** Chat special tokens that were not in the vocabulary and got new ids at its end. */
  addedChatTokens: { id: number; text: string }[];
  /** Size of the vocabulary as it came, before the chat tokens were added. */
  originalVocabSize: number;
}

/**
 * Builds our tokenizer from a byte-level BPE vocabulary (token -> id), merges in rank order and the
 * added (special) tokens. The six chat tokens are appended when absent. Throws HfFormatError naming
 * the first thing that is not byte-level BPE.
 */
function fromHfVocabulary(input: {
  vocab: Record<string, number>;
  merges: readonly (readonly [string, string])[];
  addedTokens: readonly { id: number; content: string }[];
  pretokenizer: string;
}): ImportedTokenizer {
  const special = new Map<number, string>();
  for (const t of input.addedTokens) special.set(t.id, t.content);
  const bytesOf = new Map<number, Uint8Array>();
  let vocabSize = 0;
  for (const [token, id] of Object.entries(input.vocab)) {
    if (!Number.isInteger(id) || id < 0) throw new HfFormatError(`vocab: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}`);
    vocabSize = Math.max(vocabSize, id + 1);
    if (special.has(id)) continue;
    const bytes = tokenToBytes(token);
    if (bytes === null) throw new HfFormatError(`vocab: token ${JSON.stringify(token)} (id ${id}) is not spelled in the byte-level alphabet: not a byte-level BPE`);
    bytesOf.set(id, bytes);
  }
  for (const id of special.keys()) vocabSize = Math.max(vocabSize, id + 1);
  const byteIds: number[] = new Array(256);
  for (const [id, bytes] of bytesOf) if (bytes.length === 1) byteIds[bytes[0]] = id;
  for (let b = 0; b < 256; b++) {
    if (byteIds[b] === undefined) throw new HfFormatError(`vocab has no token for byte ${b} (${JSON.stringify(bytesToToken(Uint8Array.of(b)))}): not a byte-level BPE`);
  }
  const idOf = (token: string, where: string): number => {
    const id = Object.hasOwn(input.vocab, token) ? input.vocab[token] : undefined;
    if (id === undefined) throw new HfFormatError(`${where}: token ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  };
  const made = new Set<number>(byteIds);
  const merges = input.merges.map(([l, r], i) => {
    const out = idOf(l + r, `merges[${i}] '${l} ${r}'`);
    made.add(out);
    return [idOf(l, `merges[${i}]`), idOf(r, `merges[${i}]`), out] as [number, number, number];
  });
  // Tokens that neither a byte nor a merge makes (GPT-2's <|endoftext|> in vocab.json) can only be
  // inserted, never produced by encoding: they are special tokens.
  for (let id = 0; id < vocabSize; id++) {
    if (!made.has(id) && !special.has(id)) {
      const token = Object.entries(input.vocab).find(([, i]) => i === id)?.[0];
      if (token === undefined) throw new HfFormatError(`token id ${id} is in neither the vocabulary nor the added tokens`);
      special.set(id, token);
    }
  }
  const originalVocabSize = vocabSize;
  const present = new Set(special.values());
  const addedChatTokens: { id: number; text: string }[] = [];
  for (const text of SPECIAL_TOKEN_TEXTS) {
    if (!present.has(text)) addedChatTokens.push({ id: vocabSize++, text });
  }
  const specialTokens = [...[...special].map(([id, text]) => ({ id, text })), ...addedChatTokens].sort((a, b) => a.id - b.id);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromVocabulary({ pretokenizer: input.pretokenizer, vocabSize, byteIds, specialTokens, merges });
  } catch (err) {
    throw new HfFormatError(`the vocabulary is not one this tokenizer can represent: ${(err as Error).message}`);
  }
  return { tokenizer, addedChatTokens, originalVocabSize };
}

function describe(x: unknown): string {
  return JSON.stringify(x)?.slice(0, 200) ?? String(x);
}

/** Which of our pre-tokenizers a tokenizer.json pre_tokenizer is, or an HfFormatError. */
function detectPretokenizer(pre: unknown): string {
  const p = pre as Record<string, unknown> | null;
  const isByteLevel = (x: Record<string, unknown> | null | undefined, regex: boolean) =>
    x?.type === 'ByteLevel' && x.add_prefix_space !== true && (x.use_regex ?? true) === regex;
  if (isByteLevel(p, true)) return GPT2_PRETOKENIZER_NAME;
  if (p?.type === 'Sequence' && Array.isArray(p.pretokenizers) && p.pretokenizers.length === 2) {
    const [split, byteLevel] = p.pretokenizers as Record<string, unknown>[];
    const regex = (split?.pattern as { Regex?: unknown } | undefined)?.Regex;
    const name = Object.entries(PRETOKENIZER_PATTERNS).find(([, re]) => re.source === regex)?.[0];
    if (split?.type === 'Split' && split.behavior === 'Isolated' && split.invert !== true && name !== undefined && isByteLevel(byteLevel, false)) return name;
  }
  throw new HfFormatError(
    `pre_tokenizer ${describe(pre)} is not GPT-2's ByteLevel (add_prefix_space false) nor a Split by a known pattern (${PRETOKENIZER_NAME}) followed by ByteLevel`,
  );
}

/** Our tokenizer from a parsed tokenizer.json. */
export function fromHfTokenizerJson(json: unknown): ImportedTokenizer {
  const j = json as Record<string, any>;
  if (j === null || typeof j !== 'object') throw new HfFormatError('tokenizer.json is not a JSON object');
  const model = j.model as Record<string, any> | undefined;
  if (model?.type !== 'BPE') throw new HfFormatError(`tokenizer.json model type is ${describe(model?.type)}, expected "BPE"`);
  if (model.byte_fallback === true) throw new HfFormatError('tokenizer.json model uses byte_fallback (a SentencePiece-style BPE), not byte-level BPE');
  if (model.continuing_subword_prefix || model.end_of_word_suffix) throw new HfFormatError('tokenizer.json model uses a subword prefix or suffix, not byte-level BPE');
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) throw new HfFormatError(`tokenizer.json model has BPE dropout ${model.dropout}`);
  if (j.normalizer !== null && j.normalizer !== undefined) throw new HfFormatError(`tokenizer.json has a normalizer (${describe(j.normalizer)}); byte-level BPE has none`);
  if (j.decoder?.type !== 'ByteLevel') throw new HfFormatError(`tokenizer.json decoder is ${describe(j.decoder?.type)}, expected "ByteLevel"`);
  const pretokenizer = detectPretokenizer(j.pre_tokenizer);
  if (model.vocab === null || typeof model.vocab !== 'object') throw new HfFormatError('tokenizer.json model has no vocab');
  if (!Array.isArray(model.merges)) throw new HfFormatError('tokenizer.json model has no merges list');
  const merges = (model.merges as unknown[]).map((m, i) => parseMerge(m, `tokenizer.json merges[${i}]`));
  const added = Array.isArray(j.added_tokens) ? (j.added_tokens as { id: number; content: string }[]) : [];
  return fromHfVocabulary({ vocab: model.vocab as Record<string, number>, merges, addedTokens: added, pretokenizer });
}

/** Our tokenizer from GPT-2's vocab.json (parsed) and merges.txt (text). */
export function fromVocabAndMerges(vocab: unknown, mergesTxt: string): ImportedTokenizer {
  if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) throw new HfFormatError('vocab.json is not a JSON object');
  const lines = mergesTxt.split('\n').filter((line, i) => line !== '' && !(i === 0 && line.startsWith('#version')));
  const merges = lines.map((line, i) => parseMerge(line, `merges.txt line ${i + 1}`));
  return fromHfVocabulary({ vocab: vocab as Record<string, number>, merges, addedTokens: [], pretokenizer: GPT2_PRETOKENIZER_NAME });
}

function parseMerge(m: unknown, where: string): [string, string] {
  if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return [m[0], m[1]];
  if (typeof m === 'string') {
    const parts = m.split(' ');
    if (parts.length === 2) return [parts[0], parts[1]];
  }
  throw new HfFormatError(`${where} is ${describe(m)}, expected "left right"`);
}
