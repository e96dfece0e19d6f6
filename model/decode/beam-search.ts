/**
 * Beam search as a step decoder: all beams are rows of the shared batch, so they advance in one
 * forward. Each step, every beam proposes its 2*width best continuations; the best `width` that do not
 * end the turn become the next beams, and those that end it become finished hypotheses. Beams are
 * ranked by cumulative log-probability; finished hypotheses by logprob / length^length_penalty
 * (Wu et al. 2016 / HF convention). It stops once `width` hypotheses have finished (HF's
 * early_stopping=True), so width 1 is exactly greedy.
 *
 * Streaming: events carry the prefix that every live beam and every finished hypothesis share; the
 * winner always extends it, so a client never retracts text.
 */
import type { DecoderStep, GenerationEvent, StepDecoder } from './decoder.ts';
import type { FinishReason, GenerationControl } from './decoder.ts';
import { copyInto, logSumExp, topKIndices } from './logits.ts';
import type { DecodeOptions } from './options.ts';
import { processLogits } from './process-logits.ts';

interface Beam {
  /** Generated tokens (prompt excluded). */
  tokens: number[];
  /** Sum of processed log-probabilities: the ranking score. */
  score: number;
  /** Sum of the model's own log-probabilities (no penalties), reported to callers. */
  logprob: number;
}

interface Hypothesis extends Beam {
  /** score / length^length_penalty */
  normalized: number;
  finishReason: FinishReason;
}

function normalize(score: number, length: number, lengthPenalty: number): number {
  return score / Math.pow(Math.max(1, length), lengthPenalty);
}

function sharedPrefixLength(seqs: readonly (readonly number[])[]): number {
  if (seqs.length === 0) return 0;
  let n = Math.min(...seqs.map((s) => s.length));
  for (const s of seqs) {
    for (let i = 0; i < n; i++) {
      if (s[i] !== seqs[0][i]) {
        n = i;
        break;
      }
    }
  }
  return n;
}

export class BeamDecoder implements StepDecoder {
  private beams: Beam[] = [{ tokens: [], score: 0, logprob: 0 }];
  private readonly finished: Hypothesis[] = [];
  private streamed = 0;
  private steps = 0;
  private ended = false;
  private readonly width: number;
  readonly maxRows: number;
  private readonly exempt: ReadonlySet<number>;
  private readonly banned: number[];
  private readonly withLogprob: boolean;
  /** The beam row being processed, reused across beams and steps. */
  private work: Float32Array | null = null;

  constructor(
    private readonly prompt: readonly number[],
    private readonly opts: DecodeOptions,
    private readonly ctl: GenerationControl,
  ) {
    this.width = opts.beam_width;
    this.maxRows = opts.beam_width;
    this.exempt = new Set([ctl.eotId, ...(ctl.exempt ?? [])]);
    this.banned = [...(ctl.banned ?? [])];
    this.withLogprob = ctl.logprob ?? true;
  }

  histories(): number[][] {
    return this.beams.map((b) => [...this.prompt, ...b.tokens]);
  }

  advance(logits: Float32Array[]): DecoderStep {
    if (this.ended) throw new Error('decoder already finished');
    const { width, opts } = this;
    // 1. Score every continuation of every beam.
    const candidates: { beam: number; token: number; score: number; logprob: number }[] = [];
    this.beams.forEach((beam, b) => {
      const raw = logits[b];
      // One work buffer serves every beam: a row's processed logits are used up before the next beam's.
      this.work = copyInto(this.work, raw);
      const processed = processLogits(this.work, [...this.prompt, ...beam.tokens], opts, this.exempt, this.banned);
      // Log-probabilities of the few candidates only: the log-softmax keeps the logits' order.
      const processedLse = logSumExp(processed);
      // The model's own log-probability (no penalties) is only reported, never ranked on.
      const modelLse = this.withLogprob ? logSumExp(raw) : 0;
      for (const token of topKIndices(processed, 2 * width)) {
        const lp = processed[token] - processedLse;
        if (lp === -Infinity) continue;
        candidates.push({ beam: b, token, score: beam.score + lp, logprob: beam.logprob + (raw[token] - modelLse) });
      }
    });
    candidates.sort((x, y) => y.score - x.score || x.beam - y.beam || x.token - y.token);

    // 2. Best candidates: end-of-turn ones finish, the others become the next beams.
    const next: Beam[] = [];
    const parents: number[] = [];
    for (const c of candidates) {
      if (next.length === width) break;
      const tokens = [...this.beams[c.beam].tokens];
      if (c.token === this.ctl.eotId) {
        const normalized = normalize(c.score, tokens.length + 1, opts.length_penalty);
        this.finished.push({ tokens, score: c.score, logprob: c.logprob, normalized, finishReason: 'eot' });
        continue;
      }
      tokens.push(c.token);
      next.push({ tokens, score: c.score, logprob: c.logprob });
      parents.push(c.beam);
    }
    this.steps += 1;
    this.beams = next;
    if (this.finished.length >= width || next.length === 0) return this.finish('eot');

    // 3. Stream what every candidate now agrees on.
    const events: GenerationEvent[] = [];
    const shared = sharedPrefixLength([...next.map((b) => b.tokens), ...this.finished.map((h) => h.tokens)]);
    if (shared > this.streamed) {
      events.push({ type: 'tokens', ids: next[0].tokens.slice(this.streamed, shared) });
      this.streamed = shared;
    }
    if (this.steps >= opts.max_new_tokens) return this.finish('length', events);
    return { parents, tokens: next.map((b) => b.tokens[b.tokens.length - 1]), events, finished: false };
  }

  cancel(): GenerationEvent[] {
    return this.ended ? [] : this.finish('cancelled').events;
  }

  /** Picks the winner among finished hypotheses and (unless `width` already finished) live beams. */
  private finish(reason: FinishReason, events: GenerationEvent[] = []): DecoderStep {
    this.ended = true;
    const liveReason: FinishReason = reason === 'cancelled' ? 'cancelled' : 'length';
    const pool: Hypothesis[] = [
      ...this.finished,
      ...(this.finished.length >= this.width
        ? []
        : this.beams.map((b) => ({ ...b, normalized: normalize(b.score, b.tokens.length, this.opts.length_penalty), finishReason: liveReason }))),
    ];
    pool.sort((x, y) => y.normalized - x.normalized);
    const best = pool[0] ?? { tokens: [], score: 0, logprob: 0, normalized: 0, finishReason: liveReason };
    const out = [...events];
    if (best.tokens.length > this.streamed) out.push({ type: 'tokens', ids: best.tokens.slice(this.streamed) });
    this.streamed = best.tokens.length;
    const finishReason = reason === 'cancelled' ? 'cancelled' : best.finishReason;
    out.push({ type: 'done', ids: best.tokens, finishReason, logprob: this.withLogprob ? best.logprob : null });
    return { parents: [], tokens: [], events: out, finished: true };
  }
}
