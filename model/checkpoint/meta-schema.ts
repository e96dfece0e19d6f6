/** zod schemas and types for meta.json and train_state.json. */
import { z } from 'zod';

/** Format 2 keeps the weights in safetensors; format 1 (weights.bin, our own packing) is still read. */
export const CHECKPOINT_FORMAT = 2 as const;
const LEGACY_CHECKPOINT_FORMAT = 1 as const;
export const META_FILE = 'meta.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const LEGACY_WEIGHTS_FILE = 'weights.bin';
export const TOKENIZER_FILE = 'tokenizer.json';
export const OPTIMIZER_FILE = 'optimizer.bin';
export const TRAIN_STATE_FILE = 'train_state.json';

const checkpointKindSchema = z.enum(['policy', 'reward', 'value']);
export type CheckpointKind = z.infer<typeof checkpointKindSchema>;

const tensorDtypeSchema = z.enum(['float32', 'int32']);
export type TensorDtype = z.infer<typeof tensorDtypeSchema>;

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256 (64 chars)');
const byteCount = z.number().int().nonnegative();

const tensorEntrySchema = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  dtype: tensorDtypeSchema,
  /** Byte offset in the binary file (multiple of 4); in model.safetensors, from the start of its data section. */
  offset: byteCount,
  /** Byte length: product(shape) * 4. */
  length: byteCount,
});
export type TensorEntry = z.infer<typeof tensorEntrySchema>;

const weightsManifestSchema = z.object({
  file: z.enum([WEIGHTS_FILE, LEGACY_WEIGHTS_FILE]),
  /** sha256 of the whole weights file (for safetensors: header included). */
  sha256: sha256Schema,
  /** Size of the whole weights file. */
  bytes: byteCount,
  tensors: z.array(tensorEntrySchema),
});

export const checkpointMetaSchema = z
  .object({
    format: z.union([z.literal(CHECKPOINT_FORMAT), z.literal(LEGACY_CHECKPOINT_FORMAT)]),
    kind: checkpointKindSchema,
    /** The model config object, stored as-is (must be present, may be null). */
    config: z.unknown(),
    tokenizer_hash: z.string().min(1),
    step: z.number().int().nonnegative(),
    parent: z.string().nullable(),
    created_at: z.iso.datetime(),
    metrics: z.record(z.string(), z.number()),
    weights: weightsManifestSchema,
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((m) => m.weights.file === (m.format === CHECKPOINT_FORMAT ? WEIGHTS_FILE : LEGACY_WEIGHTS_FILE), {
    message: `format ${CHECKPOINT_FORMAT} keeps its weights in ${WEIGHTS_FILE}, format ${LEGACY_CHECKPOINT_FORMAT} in ${LEGACY_WEIGHTS_FILE}`,
    path: ['weights', 'file'],
  });
export type CheckpointMeta = z.infer<typeof checkpointMetaSchema>;

const optimizerManifestSchema = z.object({
  name: z.string().min(1),
  file: z.literal(OPTIMIZER_FILE),
  sha256: sha256Schema,
  bytes: byteCount,
  tensors: z.array(tensorEntrySchema),
});

export const trainStateSchema = z.object({
  optimizer: optimizerManifestSchema,
  /** Arbitrary JSON (step, RNG seed, data position, ...). Must be present, may be null. */
  state: z.unknown(),
});
export type TrainStateFile = z.infer<typeof trainStateSchema>;

/** Formats zod issues as "field.path[3].x: message; ..." (first few issues). */
export function formatZodIssues(error: z.ZodError, max = 3): string {
  const parts = error.issues.slice(0, max).map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
  const more = error.issues.length - max;
  if (more > 0) parts.push(`(and ${more} more issue${more === 1 ? '' : 's'})`);
  return parts.join('; ');
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}
