/**
 * A decoding strategy as a step-by-step state machine, so that one driver can advance many requests
 * in one batched forward (continuous batching) and a single request is just a batch of one.
 *
 * Each step the driver hands a decoder the next-token logits of the rows it occupies; the decoder
 * answers with the rows it wants next (each continuing one of its current rows: beam search reorders
 * and forks them), the token each new row feeds, and the events the step produced.
 */
export type FinishReason = 'eot' | 'length' | 'stop' | 'cancelled';

export interface GenerationControl {
  /** The end-of-turn id: generating it finishes the reply (it is not part of `ids`). */
  eotId: number;
  /** Ids the repetition penalty never touches (e.g. special tokens present in every prompt). */
  exempt?: Iterable<number>;
  /** Ids never generated (e.g. role tokens: a reply must not open a new turn). */
  banned?: Iterable<number>;
  /** Aborting ends generation at the next step with finishReason 'cancelled'. */
  signal?: AbortSignal;
  /**
   * Whether `done` reports the reply's log-probability (default true). It costs a log-sum-exp over
   * the vocabulary per row per step, a seventh of the engine worker's time at 8 streams; the server
   * does not report it and turns it off.
   */
  logprob?: boolean;
}

export type GenerationEvent =
  /** Newly committed token ids, in order. */
  | { type: 'tokens'; ids: number[] }
  /** The end: the whole reply, why it ended, and its log-probability under the model (no penalties; null when not asked for). */
  | { type: 'done'; ids: number[]; finishReason: FinishReason; logprob: number | null; seed?: number };

export interface DecoderStep {
  /** For each row after this step, the index of the current row it continues. */
  parents: number[];
  /** The token each new row feeds into the next forward (one per entry of `parents`). */
  tokens: number[];
  events: GenerationEvent[];
  /** No more steps: the last event is `done`, and `parents`/`tokens` are empty. */
  finished: boolean;
}

export interface StepDecoder {
  /** The most rows this decoder ever occupies (1 for greedy/sampling, beam_width for beam search). */
  readonly maxRows: number;
  /** Prompt plus generated tokens of each current row (to rebuild a cache that outgrew the window). */
  histories(): number[][];
  advance(logits: Float32Array[]): DecoderStep;
  /** Ends the reply now (client cancelled or went away); returns the final events. */
  cancel(): GenerationEvent[];
}

/** True when `parents` keeps every row in place (no cache reorder needed). */
export function isIdentity(parents: readonly number[], rows: number): boolean {
  return parents.length === rows && parents.every((p, i) => p === i);
}
