/**
 * Decoding options: names follow the seed's call (`strategy`, `max_new_tokens`, `beam_width`,
 * `repetition_penalty`, ...) and the OpenAI/HF wire names, so they pass through the server unchanged.
 * Every limit is a named constant and every error names the option and its range.
 */
import { z } from 'zod';

const STRATEGIES = ['greedy', 'beam_search', 'sample'] as const;

export const MAX_NEW_TOKENS = 1024;
export const MAX_BEAM_WIDTH = 16;
const MAX_TEMPERATURE = 5;
const MAX_TOP_K = 65536;
const MAX_REPETITION_PENALTY = 10;
const MAX_ABS_LENGTH_PENALTY = 10;
const MAX_NO_REPEAT_NGRAM = 16;
const MAX_STOP_STRINGS = 4;
const MAX_STOP_LENGTH = 64;
const MAX_SEED = 2 ** 32 - 1;

const intIn = (name: string, min: number, max: number) =>
  z.number({ error: `${name} must be a number` }).int({ error: `${name} must be an integer in [${min}, ${max}]` })
    .min(min, { error: `${name} must be an integer in [${min}, ${max}]` })
    .max(max, { error: `${name} must be an integer in [${min}, ${max}]` });

const numIn = (name: string, min: number, max: number, minExclusive = false) =>
  z.number({ error: `${name} must be a number` })
    .refine((v) => Number.isFinite(v) && (minExclusive ? v > min : v >= min) && v <= max, {
      error: `${name} must be in ${minExclusive ? '(' : '['}${min}, ${max}]`,
    });

const DecodeOptionsSchema = z
  .object({
    /** greedy: argmax; beam_search: keep the beam_width best partial replies; sample: random with temperature/top-k/top-p. */
    strategy: z.enum(STRATEGIES, { error: `strategy must be one of ${STRATEGIES.join(', ')}` }).default('greedy'),
    /** Upper bound on generated tokens (end-of-turn counts). */
    max_new_tokens: intIn('max_new_tokens', 1, MAX_NEW_TOKENS).default(64),
    /** Beams kept per step (beam_search). */
    beam_width: intIn('beam_width', 1, MAX_BEAM_WIDTH).default(4),
    /** Beam score = sum logprob / length^length_penalty; > 0 favours longer replies. */
    length_penalty: numIn('length_penalty', -MAX_ABS_LENGTH_PENALTY, MAX_ABS_LENGTH_PENALTY).default(1),
    /** CTRL penalty on tokens already present: positive logits divided by it, negative multiplied. 1 = off. */
    repetition_penalty: numIn('repetition_penalty', 0, MAX_REPETITION_PENALTY, true).default(1),
    /** Forbid repeating any n-gram of this size; 0 = off. */
    no_repeat_ngram_size: intIn('no_repeat_ngram_size', 0, MAX_NO_REPEAT_NGRAM).default(0),
    /** Sampling temperature; 0 means argmax. */
    temperature: numIn('temperature', 0, MAX_TEMPERATURE).default(1),
    /** Keep only the k most likely tokens before sampling; 0 = off. */
    top_k: intIn('top_k', 0, MAX_TOP_K).default(0),
    /** Nucleus sampling: smallest set of tokens with cumulative probability >= top_p. */
    top_p: numIn('top_p', 0, 1, true).default(1),
    /** Seed for sampling: the same seed, prompt and model give the same reply. Random when absent. */
    seed: intIn('seed', 0, MAX_SEED).optional(),
    /** Strings that end the reply (not included in it). */
    stop: z
      .array(z.string().min(1, { error: 'stop strings must not be empty' }).max(MAX_STOP_LENGTH, { error: `each stop string must be at most ${MAX_STOP_LENGTH} characters` }), { error: 'stop must be an array of strings' })
      .max(MAX_STOP_STRINGS, { error: `stop must have at most ${MAX_STOP_STRINGS} strings` })
      .default([]),
  })
  .strict();

export type DecodeOptions = z.infer<typeof DecodeOptionsSchema>;

/** An invalid decoding option; `option` names it. */
export class DecodeOptionsError extends Error {
  override readonly name = 'DecodeOptionsError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

/** Validates options, filling defaults. Throws DecodeOptionsError naming the first bad option. */
export function parseDecodeOptions(input: unknown = {}): DecodeOptions {
  const parsed = DecodeOptionsSchema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    return fail(key, `unknown decoding option '${key}'; known: ${Object.keys(DecodeOptionsSchema.shape).join(', ')}`);
  }
  const option = String(issue.path[0] ?? '(options)');
  const got = issue.path.length > 0 ? valueAt(input, issue.path) : input;
  return fail(option, `${issue.message} (got ${JSON.stringify(got) ?? String(got)})`);
}

function fail(option: string, message: string): never {
  throw new DecodeOptionsError(option, message);
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}
