/**
 * Special (control) tokens of the chat tokenizer.
 *
 * Their ids come right after the 256 byte tokens and before any learned merge, so they are the
 * same for every vocabulary size and every training run: a chat template or a checkpoint can
 * rely on `<|eot|>` always being id 260.
 */

/** Number of byte tokens; token id b (0..255) is the single byte b. */
export const BYTE_TOKEN_COUNT = 256;

/** Literal texts of the special tokens, in id order starting at BYTE_TOKEN_COUNT. */
export const SPECIAL_TOKEN_TEXTS = [
  '<|bos|>',
  '<|user|>',
  '<|assistant|>',
  '<|system|>',
  '<|eot|>',
  '<|pad|>',
] as const;

/** Ids of the special tokens by purpose. */
export interface SpecialTokenIds {
  /** Beginning of a sequence (first token of every rendered conversation). */
  readonly bos: number;
  readonly user: number;
  readonly assistant: number;
  readonly system: number;
  /** End of a turn: the model emits it to say "my reply is finished". */
  readonly eot: number;
  /** Padding for batching; never trained on. */
  readonly pad: number;
}

export const SPECIAL_TOKEN_IDS: SpecialTokenIds = Object.freeze({
  bos: BYTE_TOKEN_COUNT + 0,
  user: BYTE_TOKEN_COUNT + 1,
  assistant: BYTE_TOKEN_COUNT + 2,
  system: BYTE_TOKEN_COUNT + 3,
  eot: BYTE_TOKEN_COUNT + 4,
  pad: BYTE_TOKEN_COUNT + 5,
});

/** Id of the first learned merge token (= 256 bytes + the special tokens). */
export const FIRST_MERGE_ID = BYTE_TOKEN_COUNT + SPECIAL_TOKEN_TEXTS.length;

/**
 * Upper bound on the vocabulary: pair lookups pack two ids into one number as a*65536+b,
 * and models may store ids as uint16.
 */
export const MAX_VOCAB_SIZE = 65536;
