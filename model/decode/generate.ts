/**
 * Generation as an async iterator of events, so that streaming is iteration: greedy and sampling
 * commit one token per step; beam search commits the prefix that every candidate still shares
 * (live beams and finished hypotheses), so streamed text never has to be retracted.
 *
 * The engine speaks token ids only; text, stop strings and UTF-8 are handled by `chat-reply.ts`.
 */
import type { GPT } from '../gpt/gpt.ts';
import { beamSearch } from './beam-search.ts';
import { cropPrompt, stepWithinWindow } from './context-window.ts';
import { applyRepetitionPenalty, argmax, banRepeatedNgrams, logSoftmax, sampleToken } from './logits.ts';
import { parseDecodeOptions, type DecodeOptions } from './options.ts';
import { randomSeed, seededRng, type Rng } from './rng.ts';

export type FinishReason = 'eot' | 'length' | 'stop' | 'cancelled';

export type GenerationEvent =
  /** Newly committed token ids, in order. */
  | { type: 'tokens'; ids: number[] }
  /** The end: the whole reply, why it ended, and its log-probability under the model (no penalties). */
  | { type: 'done'; ids: number[]; finishReason: FinishReason; logprob: number; seed?: number };

export interface GenerationControl {
  /** The end-of-turn id: generating it finishes the reply (it is not part of `ids`). */
  eotId: number;
  /** Ids the repetition penalty never touches (e.g. special tokens present in every prompt). */
  exempt?: Iterable<number>;
  /** Ids never generated (e.g. role tokens: a reply must not open a new turn). */
  banned?: Iterable<number>;
  /** Aborting ends generation at the next step with finishReason 'cancelled'. */
  signal?: AbortSignal;
}

/** Per-sequence logit rules shared by greedy, sampling and beam search. */
export function processLogits(
  logits: Float32Array,
  history: readonly number[],
  opts: DecodeOptions,
  exempt: ReadonlySet<number>,
  banned: readonly number[],
): Float32Array {
  for (const id of banned) logits[id] = -Infinity;
  applyRepetitionPenalty(logits, history, opts.repetition_penalty, exempt);
  banRepeatedNgrams(logits, history, opts.no_repeat_ngram_size);
  return logits;
}

/**
 * Generates a reply to `prompt` (token ids). Options are validated here too, so a caller that skipped
 * `parseDecodeOptions` still gets a clear error. The prompt is cropped from the left if it leaves no
 * room in the window.
 */
export async function* generate(
  model: GPT,
  prompt: readonly number[],
  options: unknown,
  ctl: GenerationControl,
): AsyncGenerator<GenerationEvent> {
  const opts = parseDecodeOptions(options);
  if (prompt.length === 0) throw new Error('prompt must have at least one token');
  const cropped = cropPrompt(prompt, model.config.context, opts.max_new_tokens);
  if (opts.strategy === 'beam_search') {
    yield* beamSearch(model, cropped, opts, ctl);
    return;
  }
  const seed = opts.seed ?? randomSeed();
  yield* sampleLoop(model, cropped, opts, ctl, opts.strategy === 'greedy' ? null : seededRng(seed), seed);
}

async function* sampleLoop(
  model: GPT,
  prompt: number[],
  opts: DecodeOptions,
  ctl: GenerationControl,
  rng: Rng | null,
  seed: number,
): AsyncGenerator<GenerationEvent> {
  const exempt = new Set([ctl.eotId, ...(ctl.exempt ?? [])]);
  const banned = [...(ctl.banned ?? [])];
  const history = [...prompt];
  const reply: number[] = [];
  let logprob = 0;
  let { logits, cache } = await model.prefill([prompt]);
  try {
    let finishReason: FinishReason = 'length';
    for (let i = 0; i < opts.max_new_tokens; i++) {
      if (ctl.signal?.aborted) {
        finishReason = 'cancelled';
        break;
      }
      const raw = logits[0];
      const lp = logSoftmax(raw);
      const processed = processLogits(Float32Array.from(raw), history, opts, exempt, banned);
      const token = rng ? sampleToken(processed, opts, rng) : argmax(processed);
      logprob += lp[token];
      if (token === ctl.eotId) {
        finishReason = 'eot';
        break;
      }
      reply.push(token);
      history.push(token);
      yield { type: 'tokens', ids: [token] };
      if (i + 1 === opts.max_new_tokens) break;
      ({ logits, cache } = await stepWithinWindow(model, cache, [token], [history]));
    }
    yield { type: 'done', ids: reply, finishReason, logprob, seed: rng ? seed : undefined };
  } finally {
    cache.dispose();
  }
}

/** Runs a generation to the end and returns its final event (tests, batch jobs, the CLI). */
export async function generateToEnd(
  model: GPT,
  prompt: readonly number[],
  options: unknown,
  ctl: GenerationControl,
): Promise<Extract<GenerationEvent, { type: 'done' }>> {
  for await (const ev of generate(model, prompt, options, ctl)) if (ev.type === 'done') return ev;
  throw new Error('generation ended without a done event');
}
