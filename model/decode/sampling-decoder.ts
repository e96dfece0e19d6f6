/**
 * Greedy and sampling: one row, one token per step. Greedy is the argmax of the processed logits;
 * sampling draws from them (temperature, top-k, top-p) with a seeded generator.
 */
import type { DecoderStep, GenerationEvent, StepDecoder } from './decoder.ts';
import type { FinishReason, GenerationControl } from './decoder.ts';
import { processLogits } from './process-logits.ts';
import { argmax, copyInto, logSumExp } from './logits.ts';
import { sampleToken } from './sample-token.ts';
import type { DecodeOptions } from './options.ts';
import { seededRng, type Rng } from './rng.ts';

export class SamplingDecoder implements StepDecoder {
  readonly maxRows = 1;
  private readonly history: number[];
  private readonly reply: number[] = [];
  private logprob = 0;
  private readonly rng: Rng | null;
  private readonly exempt: ReadonlySet<number>;
  private readonly banned: number[];
  private ended = false;
  private readonly withLogprob: boolean;
  /** The row being processed: one buffer reused every step (a new 16 KB array per row per step was 4 µs of the step). */
  private work: Float32Array | null = null;

  constructor(
    prompt: readonly number[],
    private readonly opts: DecodeOptions,
    private readonly ctl: GenerationControl,
    private readonly seed: number,
  ) {
    this.history = [...prompt];
    this.rng = opts.strategy === 'sample' ? seededRng(seed) : null;
    this.exempt = new Set([ctl.eotId, ...(ctl.exempt ?? [])]);
    this.banned = [...(ctl.banned ?? [])];
    this.withLogprob = ctl.logprob ?? true;
  }

  histories(): number[][] {
    return [this.history];
  }

  advance(logits: Float32Array[]): DecoderStep {
    if (this.ended) throw new Error('decoder already finished');
    const raw = logits[0];
    this.work = copyInto(this.work, raw);
    const processed = processLogits(this.work, this.history, this.opts, this.exempt, this.banned);
    const token = this.rng ? sampleToken(processed, this.opts, this.rng) : argmax(processed);
    if (this.withLogprob) this.logprob += raw[token] - logSumExp(raw);
    if (token === this.ctl.eotId) return this.finish([], 'eot');
    this.reply.push(token);
    this.history.push(token);
    const tokens: GenerationEvent = { type: 'tokens', ids: [token] };
    if (this.reply.length >= this.opts.max_new_tokens) return this.finish([tokens], 'length');
    return { parents: [0], tokens: [token], events: [tokens], finished: false };
  }

  cancel(): GenerationEvent[] {
    return this.ended ? [] : this.finish([], 'cancelled').events;
  }

  private finish(events: GenerationEvent[], finishReason: FinishReason): DecoderStep {
    this.ended = true;
    const done: GenerationEvent = { type: 'done', ids: [...this.reply], finishReason, logprob: this.withLogprob ? this.logprob : null, seed: this.rng ? this.seed : undefined };
    return { parents: [], tokens: [], events: [...events, done], finished: true };
  }
}
