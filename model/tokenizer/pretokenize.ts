/**
 * Pre-tokenization: split text into chunks before BPE, GPT-2 style. Merges never cross a chunk
 * boundary, so a token never spans e.g. the end of a word and the following punctuation, and a
 * chunk's encoding can be cached and reused wherever the same chunk appears.
 *
 * Chunks, in order of preference at each position:
 *  - English contractions: 's 't 're 've 'm 'll 'd (either case)
 *  - a run of letters (with combining marks, so accented/Indic words stay whole), with an
 *    optional leading space: the space belongs to the following word, as in GPT-2
 *  - 1 to 3 digits with an optional leading space (numbers are split in groups of at most 3,
 *    which keeps the vocabulary from memorising arbitrary long numbers)
 *  - a run of other symbols/punctuation with an optional leading space
 *  - whitespace not followed by a non-space (so "a   b" -> "a", "  ", " b"), else any whitespace
 *
 * Every code point (lone surrogates included, which match the "other symbols" class) is covered
 * by some alternative and no alternative matches the empty string, so the chunks concatenate
 * back to exactly the input text.
 */

/** Name stored in tokenizer files: a file made with a different splitter must be refused. */
export const PRETOKENIZER_NAME = 'gpt2-like-digits3-v1';
/** GPT-2's own splitter (its ByteLevel pre-tokenizer): what imported GPT-2-family vocabularies expect. */
export const GPT2_PRETOKENIZER_NAME = 'gpt2';

const CHUNK_PATTERN =
  /'(?:[sdmtSDMT]|[lL][lL]|[vV][eE]|[rR][eE])| ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;
/** GPT-2's pattern (openai/gpt-2 encoder.py): case-sensitive contractions, any run of digits. */
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** The splitting regex of each known pre-tokenizer (the `source` is what tokenizer.json files carry). */
export const PRETOKENIZER_PATTERNS: Readonly<Record<string, RegExp>> = {
  [PRETOKENIZER_NAME]: CHUNK_PATTERN,
  [GPT2_PRETOKENIZER_NAME]: GPT2_PATTERN,
};

export function isKnownPretokenizer(name: string): boolean {
  return Object.hasOwn(PRETOKENIZER_PATTERNS, name);
}

export function pretokenize(text: string, name: string = PRETOKENIZER_NAME): string[] {
  const base = PRETOKENIZER_PATTERNS[name];
  if (base === undefined) throw new Error(`unknown pre-tokenizer '${name}'`);
  const pattern = new RegExp(base); // own copy: lastIndex is per-regex state
  const chunks: string[] = [];
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(text)) !== null) chunks.push(match[0]);
  return chunks;
}
