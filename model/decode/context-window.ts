/**
 * Keeping generation inside the model's window. Learned positions end at `context`, so a sequence
 * that would grow past it is cropped to its most recent tokens and its cache rebuilt (the same
 * cropping nanoGPT's generate does, with the recompute amortised over context/2 steps).
 */
import type { DecodeCache, InferenceModel } from '../inference/inference-model.ts';

/** The most recent tokens of a prompt that leave room for at least `reserve` new ones. */
export function cropPrompt(prompt: readonly number[], context: number, reserve: number): number[] {
  const room = Math.max(1, context - Math.max(1, Math.min(reserve, Math.floor(context / 2))));
  return prompt.length > room ? prompt.slice(prompt.length - room) : [...prompt];
}

/**
 * Advances every sequence by one token. When a sequence is full, the cache is rebuilt from the last
 * context/2 tokens of each sequence (`sequences` holds full token histories, the new tokens included).
 * Consumes `cache`.
 */
export async function stepWithinWindow(
  model: InferenceModel,
  cache: DecodeCache,
  tokens: number[],
  sequences: readonly (readonly number[])[],
): Promise<{ logits: Float32Array[]; cache: DecodeCache }> {
  const context = model.config.context;
  const full = cache.nextPos.some((p) => p >= context);
  if (!full) return model.step(cache, tokens);
  cache.dispose();
  const keep = Math.max(1, Math.floor(context / 2));
  const r = await model.prefill(sequences.map((s) => s.slice(Math.max(0, s.length - keep))));
  return { logits: r.logits, cache: r.cache };
}
