/**
 * readCheckpointMeta / loadCheckpoint: verify everything first, create tensors last.
 * A failed load throws CheckpointError and leaves no tensors behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, describeError } from './errors.ts';
import { sha256Bytes } from './hash.ts';
import {
  META_FILE,
  OPTIMIZER_FILE,
  TOKENIZER_FILE,
  TRAIN_STATE_FILE,
  WEIGHTS_FILE,
  checkpointMetaSchema,
  formatZodIssues,
  trainStateSchema,
  type CheckpointMeta,
  type TensorEntry,
} from './meta-schema.ts';
import type { NamedTensor } from './save.ts';
import { checkpointDtype, parseSafetensorsHeader } from './safetensors.ts';
import { formatShape, unpackTensors, validateTensorManifest, type RawTensor } from './tensor-file.ts';

interface LoadCheckpointOptions {
  expect?: {
    kind?: string;
    /** The model's parameters, name -> shape. The checkpoint must hold exactly these. */
    names?: Record<string, number[]>;
  };
  /** Also load optimizer.bin + train_state.json; fails if the checkpoint has no resume state. */
  withResume?: boolean;
}

export interface ResumeState {
  optimizerName: string;
  /** Optimizer tensors in the order they were saved. */
  tensors: NamedTensor[];
  state: unknown;
}

interface LoadedCheckpoint {
  meta: CheckpointMeta;
  /** Weights in manifest order. The caller owns (and must dispose) these tensors. */
  weights: Map<string, tf.Tensor>;
  tokenizerJson: unknown;
  /** Present only when loaded with `withResume: true`. The caller owns its tensors. */
  resume?: ResumeState;
}

/** Reads and validates meta.json (schema + manifest self-consistency) without touching the weights file. */
export async function readCheckpointMeta(dir: string): Promise<CheckpointMeta> {
  const raw = await readJsonFile(dir, META_FILE, 'not a checkpoint directory (meta.json is missing)');
  const parsed = checkpointMetaSchema.safeParse(raw);
  if (!parsed.success) throw new CheckpointError(dir, `meta.json is invalid: ${formatZodIssues(parsed.error)}`);
  const meta = parsed.data;
  const problem = validateTensorManifest(meta.weights.tensors, meta.weights.bytes);
  if (problem !== null) throw new CheckpointError(dir, `meta.json weights manifest is inconsistent: ${problem}`);
  return meta;
}

/** True when the checkpoint has resume state (train_state.json). Does not verify it. */
export async function checkpointHasResume(dir: string): Promise<boolean> {
  try {
    return (await stat(join(dir, TRAIN_STATE_FILE))).isFile();
  } catch {
    return false;
  }
}

/**
 * Loads a checkpoint after verifying meta.json (schema), the weights file (exists, size, sha256),
 * the manifest (offsets/lengths/shapes/dtypes), the expected kind and parameter set, the tokenizer
 * JSON and, with `withResume`, the resume state. Tensors are created only after every check passed.
 */
export async function loadCheckpoint(dir: string, opts: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  const meta = await readCheckpointMeta(dir);

  const expect = opts.expect ?? {};
  if (expect.kind !== undefined && meta.kind !== expect.kind) {
    throw new CheckpointError(dir, `checkpoint kind is '${meta.kind}', expected '${expect.kind}'`);
  }
  if (expect.names !== undefined) {
    const problem = compareWithExpected(meta.weights.tensors, expect.names);
    if (problem !== null) throw new CheckpointError(dir, `weights do not match the expected model: ${problem}`);
  }

  const weightBytes = await readVerifiedBinary(dir, meta.weights.file, meta.weights.bytes, meta.weights.sha256);
  const tokenizerJson = await readJsonFile(dir, TOKENIZER_FILE, 'tokenizer.json is missing');

  let resumeRaw: { optimizerName: string; tensors: RawTensor[]; state: unknown } | undefined;
  if (opts.withResume) {
    const rawState = await readJsonFile(dir, TRAIN_STATE_FILE, 'has no resume state (train_state.json is missing)');
    const st = trainStateSchema.safeParse(rawState);
    if (!st.success) throw new CheckpointError(dir, `train_state.json is invalid: ${formatZodIssues(st.error)}`);
    const opt = st.data.optimizer;
    const problem = validateTensorManifest(opt.tensors, opt.bytes);
    if (problem !== null) throw new CheckpointError(dir, `train_state.json optimizer manifest is inconsistent: ${problem}`);
    const optBytes = await readVerifiedBinary(dir, OPTIMIZER_FILE, opt.bytes, opt.sha256);
    resumeRaw = { optimizerName: opt.name, tensors: unpackTensors(optBytes, opt.tensors), state: st.data.state };
  }
  const rawWeights = meta.weights.file === WEIGHTS_FILE ? unpackSafetensors(dir, weightBytes, meta.weights.tensors) : unpackTensors(weightBytes, meta.weights.tensors);

  // All checks passed: create tensors. If tfjs throws midway, dispose what was created.
  const created: tf.Tensor[] = [];
  const make = (t: RawTensor): tf.Tensor => {
    const tensor = tf.tensor(t.data, t.shape, t.dtype);
    created.push(tensor);
    return tensor;
  };
  try {
    const weights = new Map<string, tf.Tensor>();
    for (const t of rawWeights) weights.set(t.name, make(t));
    const result: LoadedCheckpoint = { meta, weights, tokenizerJson };
    if (resumeRaw) {
      result.resume = {
        optimizerName: resumeRaw.optimizerName,
        tensors: resumeRaw.tensors.map((t) => ({ name: t.name, tensor: make(t) })),
        state: resumeRaw.state,
      };
    }
    return result;
  } catch (err) {
    for (const t of created) t.dispose();
    throw new CheckpointError(dir, `creating tensors failed: ${describeError(err)}`, { cause: err });
  }
}

/**
 * The tensors of a model.safetensors whose bytes passed the sha256 check, after checking that its own
 * header says what meta.json's manifest says (a file edited and re-hashed by hand is caught here).
 */
function unpackSafetensors(dir: string, bytes: Uint8Array, manifest: readonly TensorEntry[]): RawTensor[] {
  let header;
  try {
    header = parseSafetensorsHeader(bytes);
  } catch (err) {
    throw new CheckpointError(dir, `${WEIGHTS_FILE} ${describeError(err)}`, { cause: err });
  }
  const inFile = new Map(header.tensors.map((t) => [t.name, t] as const));
  for (const m of manifest) {
    const t = inFile.get(m.name);
    if (t === undefined) throw new CheckpointError(dir, `${WEIGHTS_FILE} lacks tensor '${m.name}' listed in meta.json`);
    const dtype = checkpointDtype(t.dtype) ?? t.dtype;
    if (dtype !== m.dtype || !sameShape(t.shape, m.shape) || t.offset !== m.offset) {
      throw new CheckpointError(dir, `${WEIGHTS_FILE} describes tensor '${m.name}' as ${dtype} ${formatShape(t.shape)} at ${t.offset}, meta.json as ${m.dtype} ${formatShape(m.shape)} at ${m.offset}`);
    }
  }
  if (header.tensors.length !== manifest.length) {
    const listed = new Set(manifest.map((m) => m.name));
    throw new CheckpointError(dir, `${WEIGHTS_FILE} holds tensors meta.json does not list: ${listNames(header.tensors.map((t) => t.name).filter((n) => !listed.has(n)))}`);
  }
  return unpackTensors(bytes.subarray(header.dataStart), manifest);
}

/** Compares a manifest with the expected name -> shape map; returns a message or null. */
function compareWithExpected(tensors: readonly TensorEntry[], expected: Record<string, number[]>): string | null {
  const got = new Map(tensors.map((t) => [t.name, t.shape] as const));
  const mismatched: string[] = [];
  const missing: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const actual = got.get(name);
    if (actual === undefined) missing.push(name);
    else if (!sameShape(actual, shape)) {
      mismatched.push(`tensor '${name}' has shape ${formatShape(actual)}, expected ${formatShape(shape)}`);
    }
  }
  const unexpected = tensors.map((t) => t.name).filter((name) => !Object.hasOwn(expected, name));
  const parts: string[] = [];
  if (mismatched.length > 0) {
    parts.push(mismatched[0] + (mismatched.length > 1 ? ` (and ${mismatched.length - 1} more shape mismatches)` : ''));
  }
  if (missing.length > 0) parts.push(`missing tensors: ${listNames(missing)}`);
  if (unexpected.length > 0) parts.push(`unexpected tensors: ${listNames(unexpected)}`);
  return parts.length === 0 ? null : parts.join('; ');
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function listNames(names: readonly string[], max = 10): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`).join(', ');
  return names.length > max ? `${shown} (and ${names.length - max} more)` : shown;
}

async function readJsonFile(dir: string, file: string, missingMessage: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(join(dir, file), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(dir, missingMessage, { cause: err });
    throw new CheckpointError(dir, `cannot read ${file}: ${describeError(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CheckpointError(dir, `${file} is not valid JSON: ${describeError(err)}`, { cause: err });
  }
}

export async function readVerifiedBinary(dir: string, file: string, bytes: number, sha256: string): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await readFile(join(dir, file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(dir, `${file} is missing`, { cause: err });
    throw new CheckpointError(dir, `cannot read ${file}: ${describeError(err)}`, { cause: err });
  }
  if (data.length !== bytes) {
    const how = data.length < bytes ? 'truncated' : 'too long';
    throw new CheckpointError(dir, `${file} is ${how}: it has ${data.length} bytes, the manifest says ${bytes}`);
  }
  const actual = sha256Bytes(data);
  if (actual !== sha256) {
    throw new CheckpointError(dir, `${file} sha256 mismatch (corrupted): file has ${actual}, the manifest says ${sha256}`);
  }
  return data;
}
