/**
 * Incremental detokenizer for streaming generated tokens to a user.
 *
 * A multibyte character (an emoji, a CJK character) is often split across several byte-level
 * tokens. Decoding each token on its own would show U+FFFD halves; instead the bytes of an
 * unfinished character are held back until it completes. The concatenation of all `push`
 * results and `flush` equals `tok.decode(ids, { skipSpecial })` for the same ids.
 */
import type { Tokenizer } from './bpe.ts';
import { decodeWtf8, decodeWtf8Prefix } from './wtf8.ts';

interface StreamDecoderOptions {
  /** Leave special tokens (<|eot|>, ...) out of the text. Default true. */
  skipSpecial?: boolean;
}

export class StreamDecoder {
  private readonly skipSpecial: boolean;
  /** Bytes of an unfinished character (at most 3). */
  private pending: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly tok: Tokenizer,
    opts: StreamDecoderOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecial ?? true;
  }

  /** Adds one token; returns the text of the characters it completes (maybe ""). */
  push(id: number): string {
    if (this.skipSpecial && this.tok.isSpecial(id)) return '';
    const bytes = this.tok.tokenToBytes(id);
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending, 0);
    joined.set(bytes, this.pending.length);
    const { text, incompleteTail } = decodeWtf8Prefix(joined);
    this.pending = incompleteTail;
    return text;
  }

  /** Ends the stream: returns the held-back bytes, as U+FFFD if they never completed. */
  flush(): string {
    const text = decodeWtf8(this.pending);
    this.pending = new Uint8Array(0);
    return text;
  }
}
