/** Public API of the chat tokenizer. */
export {
  Tokenizer,
  TOKENIZER_FORMAT,
  TOKENIZER_VERSION,
  type DecodeOptions,
  type MergePair,
  type TokenizerJSON,
} from './bpe.ts';
export { trainBpe, type TrainBpeOptions } from './train-bpe.ts';
export {
  renderConversation,
  renderPrompt,
  type ChatMessage,
  type ChatRole,
  type RenderOptions,
  type RenderedConversation,
  type RenderedPrompt,
} from './chat-template.ts';
export { StreamDecoder, type StreamDecoderOptions } from './stream-decoder.ts';
export {
  BYTE_TOKEN_COUNT,
  FIRST_MERGE_ID,
  MAX_VOCAB_SIZE,
  SPECIAL_TOKEN_IDS,
  SPECIAL_TOKEN_TEXTS,
  type SpecialTokenIds,
} from './special-tokens.ts';
export { pretokenize, PRETOKENIZER_NAME, GPT2_PRETOKENIZER_NAME, PRETOKENIZER_PATTERNS } from './pretokenize.ts';
export { decodeWtf8, encodeWtf8 } from './wtf8.ts';
