/**
 * Generation as an async iterator of events, so that streaming is iteration. This is the driver for
 * one request on its own cache; the server drives many decoders in one shared batch instead.
 *
 * The engine speaks token ids only; text, stop strings and UTF-8 are handled by `chat-reply.ts`.
 */
import type { GPT } from '../gpt/gpt.ts';
import { BeamDecoder } from './beam-search.ts';
import { cropPrompt, stepWithinWindow } from './context-window.ts';
import { isIdentity, type GenerationControl, type GenerationEvent, type StepDecoder } from './decoder.ts';
import { parseDecodeOptions, type DecodeOptions } from './options.ts';
import { randomSeed } from './rng.ts';
import { SamplingDecoder } from './sampling-decoder.ts';

/** The decoder for validated options; sampling without a seed gets a random one (reported in `done`). */
export function createDecoder(prompt: readonly number[], opts: DecodeOptions, ctl: GenerationControl): StepDecoder {
  if (opts.strategy === 'beam_search') return new BeamDecoder(prompt, opts, ctl);
  return new SamplingDecoder(prompt, opts, ctl, opts.seed ?? randomSeed());
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
  const decoder = createDecoder(cropped, opts, ctl);
  let { logits, cache } = await model.prefill([cropped]);
  try {
    for (;;) {
      if (ctl.signal?.aborted) {
        yield* decoder.cancel();
        return;
      }
      const step = decoder.advance(logits);
      yield* step.events;
      if (step.finished) return;
      if (!isIdentity(step.parents, cache.batch)) cache = cache.selectRows(step.parents);
      ({ logits, cache } = await stepWithinWindow(model, cache, step.tokens, decoder.histories()));
    }
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
