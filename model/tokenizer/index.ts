/** Public API of the chat tokenizer. */
export {
  Tokenizer,
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
  FIRST_MERGE_ID,
  SPECIAL_TOKEN_TEXTS,
  type SpecialTokenIds,
} from './special-tokens.ts';
export { pretokenize } from './pretokenize.ts';
export { decodeWtf8, encodeWtf8 } from './wtf8.ts';
