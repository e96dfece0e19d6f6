/** Public API of the chat tokenizer. */
export {
  Tokenizer,
} from './bpe.ts';
export { trainBpe } from './train-bpe.ts';
export {
  renderConversation,
  renderPrompt,
  type ChatMessage,
} from './chat-template.ts';
export { StreamDecoder } from './stream-decoder.ts';
export {
  FIRST_MERGE_ID,
  SPECIAL_TOKEN_TEXTS,
} from './special-tokens.ts';
export { pretokenize, PRETOKENIZER_NAME, GPT2_PRETOKENIZER_NAME, PRETOKENIZER_PATTERNS } from './pretokenize.ts';
export { decodeWtf8, encodeWtf8 } from './wtf8.ts';
