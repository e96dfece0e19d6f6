/**
 * Beam search: all beams advance in one batched forward. Each step, every beam proposes its
 * 2*width best continuations; the best `width` that do not end the turn become the next beams, and
 * those that end it become finished hypotheses. Beams are ranked by cumulative log-probability;
 * finished hypotheses by logprob / length^length_penalty (Wu et al. 2016 / HF convention). It stops
 * once `width` hypotheses have finished (HF's early_stopping=True), so width 1 is exactly greedy.
 *
 * Streaming: the events carry the prefix that every live beam and every finished hypothesis share;
 * the winner always extends it, so a client never retracts text.
 */
import type { GPT } from '../gpt/gpt.ts';
import type { KVCache } from '../gpt/kv-cache.ts';
import { stepWithinWindow } from './context-window.ts';
import type { FinishReason, GenerationControl, GenerationEvent } from './generate.ts';
import { processLogits } from './generate.ts';
import { logSoftmax, topKIndices } from './logits.ts';
import type { DecodeOptions } from './options.ts';

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

export async function* beamSearch(
  model: GPT,
  prompt: number[],
  opts: DecodeOptions,
  ctl: GenerationControl,
): AsyncGenerator<GenerationEvent> {
  const width = opts.beam_width;
  const exempt = new Set([ctl.eotId, ...(ctl.exempt ?? [])]);
  const banned = [...(ctl.banned ?? [])];
  let beams: Beam[] = [{ tokens: [], score: 0, logprob: 0 }];
  const finished: Hypothesis[] = [];
  let streamed = 0;
  const first = await model.prefill([prompt]);
  let logits = first.logits;
  let cacheRef: KVCache = first.cache;
  let finishReason: FinishReason = 'length';
  try {
    for (let step = 0; step < opts.max_new_tokens; step++) {
      if (ctl.signal?.aborted) {
        finishReason = 'cancelled';
        break;
      }
      // 1. Score every continuation of every beam.
      const candidates: { beam: number; token: number; score: number; logprob: number }[] = [];
      beams.forEach((beam, b) => {
        const raw = logits[b];
        const modelLp = logSoftmax(raw);
        const processedLp = logSoftmax(processLogits(Float32Array.from(raw), [...prompt, ...beam.tokens], opts, exempt, banned));
        for (const token of topKIndices(processedLp, 2 * width)) {
          if (processedLp[token] === -Infinity) continue;
          candidates.push({ beam: b, token, score: beam.score + processedLp[token], logprob: beam.logprob + modelLp[token] });
        }
      });
      candidates.sort((x, y) => y.score - x.score || x.beam - y.beam || x.token - y.token);

      // 2. Best candidates: end-of-turn ones finish, the others become the next beams.
      const next: Beam[] = [];
      const parents: number[] = [];
      for (const c of candidates) {
        if (next.length === width) break;
        const tokens = [...beams[c.beam].tokens];
        if (c.token === ctl.eotId) {
          finished.push({ tokens, score: c.score, logprob: c.logprob, normalized: normalize(c.score, tokens.length + 1, opts.length_penalty), finishReason: 'eot' });
          continue;
        }
        tokens.push(c.token);
        next.push({ tokens, score: c.score, logprob: c.logprob });
        parents.push(c.beam);
      }
      if (finished.length >= width || next.length === 0) {
        finishReason = 'eot';
        break;
      }
      beams = next;

      // 3. Stream what every candidate now agrees on.
      const shared = sharedPrefixLength([...beams.map((b) => b.tokens), ...finished.map((h) => h.tokens)]);
      if (shared > streamed) {
        yield { type: 'tokens', ids: beams[0].tokens.slice(streamed, shared) };
        streamed = shared;
      }
      if (step + 1 === opts.max_new_tokens) break;

      // 4. Reorder the cache to the surviving beams' parents and advance all beams at once.
      cacheRef = cacheRef.selectRows(parents);
      const histories = beams.map((b) => [...prompt, ...b.tokens]);
      ({ logits, cache: cacheRef } = await stepWithinWindow(model, cacheRef, beams.map((b) => b.tokens[b.tokens.length - 1]), histories));
    }
    // Beams still alive at the end compete with the finished ones on equal terms.
    const pool: Hypothesis[] = [
      ...finished,
      ...(finished.length >= width ? [] : beams.map((b) => ({ ...b, normalized: normalize(b.score, b.tokens.length, opts.length_penalty), finishReason: finishReason === 'cancelled' ? ('cancelled' as const) : ('length' as const) }))),
    ];
    pool.sort((x, y) => y.normalized - x.normalized);
    const best = pool[0];
    if (best.tokens.length > streamed) yield { type: 'tokens', ids: best.tokens.slice(streamed) };
    yield { type: 'done', ids: best.tokens, finishReason: finishReason === 'cancelled' ? 'cancelled' : best.finishReason, logprob: best.logprob };
  } finally {
    cacheRef.dispose();
  }
}
