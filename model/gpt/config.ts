/**
 * GPT configuration: one typed object, named presets, and validation with messages that name the field.
 */
import { z } from 'zod';

const GPTConfigSchema = z
  .object({
    /** Number of token ids (bytes + specials + merges); must equal the tokenizer's. */
    vocabSize: z.number().int().min(8).max(65536),
    /** Context window in tokens: the number of learned positions. */
    context: z.number().int().min(4).max(8192),
    /** Width of the residual stream. */
    dModel: z.number().int().min(4).max(4096),
    /** Number of transformer blocks. */
    nLayers: z.number().int().min(1).max(64),
    /** Attention heads per block; must divide dModel. */
    nHeads: z.number().int().min(1).max(64),
    /** Dropout on embeddings and residual branches while training (always 0 at inference). */
    dropout: z.number().min(0).max(0.9),
    /** Seed for weight initialisation, so a config alone reproduces the initial model. */
    initSeed: z.number().int().min(0),
  })
  .strict()
  .refine((c) => c.dModel % c.nHeads === 0, { message: 'dModel must be divisible by nHeads', path: ['nHeads'] });

export type GPTConfig = z.infer<typeof GPTConfigSchema>;

/**
 * Named presets. `tiny` trains in seconds in tests; `small` is the default CPU chat model; `gpt2` is
 * GPT-2's 124M shape (its 50257 tokens plus our six chat tokens), the size of imported GPT-2 weights.
 */
export const PRESETS = {
  tiny: { vocabSize: 512, context: 64, dModel: 32, nLayers: 2, nHeads: 2, dropout: 0, initSeed: 1 },
  small: { vocabSize: 4096, context: 128, dModel: 128, nLayers: 4, nHeads: 4, dropout: 0.1, initSeed: 1 },
  base: { vocabSize: 8192, context: 512, dModel: 512, nLayers: 8, nHeads: 8, dropout: 0.1, initSeed: 1 },
  gpt2: { vocabSize: 50263, context: 1024, dModel: 768, nLayers: 12, nHeads: 12, dropout: 0.1, initSeed: 1 },
} as const satisfies Record<string, GPTConfig>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** Validates a config (e.g. read from a checkpoint); throws an Error naming the first bad field. */
export function parseGPTConfig(input: unknown): GPTConfig {
  const parsed = GPTConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid GPT config: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** A preset with overrides, validated. */
export function gptConfig(preset: PresetName, overrides: Partial<GPTConfig> = {}): GPTConfig {
  if (!(preset in PRESETS)) throw new Error(`unknown preset '${preset}'; expected one of ${PRESET_NAMES.join(', ')}`);
  return parseGPTConfig({ ...PRESETS[preset], ...overrides });
}

/** Number of trainable parameters of the language model (tied embeddings counted once). */
export function countParams(c: GPTConfig): number {
  const d = c.dModel;
  const block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
  return c.vocabSize * d + c.context * d + c.nLayers * block + 2 * d;
}
