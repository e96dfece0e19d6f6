/**
 * What decoding needs from an inference engine: prefill ragged prompts into a KV cache, step one token
 * per row, and the cache edits of continuous batching and beam search. The tfjs `GPT` (which also
 * trains) and the ONNX Runtime `OrtGPT` both provide it; a cache only goes back to the engine that
 * made it.
 */
import type { CacheRows } from '../gpt/cache-rows.ts';
import type { GPTConfig } from '../gpt/config.ts';

export interface DecodeCache extends CacheRows {
  /** Throws if this cache was already consumed or disposed. */
  assertLive(): void;
  dispose(): void;
  /** Row i of the result is row rows[i] of this cache (rows may repeat). Consumes this cache. */
  selectRows(rows: number[]): DecodeCache;
  /** Drops leading columns that are padding in every row; consumes this cache when it trims. */
  trimLeft(): DecodeCache;
}

export interface DecodeStep {
  /** Next-token logits per sequence, each (V). */
  logits: Float32Array[];
  cache: DecodeCache;
}

export interface InferenceModel {
  readonly config: GPTConfig;
  /**
   * Encodes prompts (ragged, left-padded) into a fresh cache and returns each one's next-token
   * logits; with `allLogits`, also the logits at every real position.
   */
  prefill(prompts: number[][], opts?: { allLogits?: boolean }): Promise<DecodeStep & { all?: Float32Array[][] }>;
  /** Appends one token per row; consumes `cache`. */
  step(cache: DecodeCache, tokens: number[]): Promise<DecodeStep>;
  /** One cache with the rows of all `caches` in order; consumes them. */
  concatRows(caches: DecodeCache[]): DecodeCache;
  dispose(): void;
}
