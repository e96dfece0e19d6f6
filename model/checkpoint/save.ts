/** saveCheckpoint: read tensors, pack, validate metadata, then write the directory atomically. */
import type * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { writeDirAtomically, writeFileDurable } from './atomic-dir.ts';
import { CheckpointError, describeError } from './errors.ts';
import { sha256Bytes } from './hash.ts';
import {
  CHECKPOINT_FORMAT,
  META_FILE,
  OPTIMIZER_FILE,
  TOKENIZER_FILE,
  TRAIN_STATE_FILE,
  WEIGHTS_FILE,
  checkpointMetaSchema,
  formatZodIssues,
  trainStateSchema,
  type CheckpointKind,
  type CheckpointMeta,
  type TrainStateFile,
} from './meta-schema.ts';
import { encodeSafetensors } from './safetensors.ts';
import { formatShape, packTensors, shapeSize, type RawTensor } from './tensor-file.ts';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export interface SaveCheckpointInput {
  kind: CheckpointKind;
  /** The model config object, stored as-is in meta.json (must be JSON-serialisable, not undefined). */
  config: unknown;
  tokenizerHash: string;
  /** Tokenizer JSON, written as-is to tokenizer.json (its hash is the caller's business). */
  tokenizerJson: unknown;
  step: number;
  parent?: string | null;
  metrics?: Record<string, number>;
  extra?: Record<string, unknown>;
  /** Model weights; written in this order (object key order for a record). Names must be unique. */
  weights: Record<string, tf.Tensor> | NamedTensor[];
  /** Optional resume state: optimizer tensors (order kept) and arbitrary JSON state. */
  resume?: { optimizerName: string; tensors: NamedTensor[]; state: unknown };
}

/**
 * Writes a checkpoint directory atomically (see atomic-dir.ts). Tensors are read with
 * `await tensor.data()` and are neither modified nor disposed. Everything is validated and
 * serialised before anything touches the disk; any failure throws CheckpointError and leaves a
 * previous checkpoint at `dir` intact.
 */
export async function saveCheckpoint(dir: string, ck: SaveCheckpointInput): Promise<CheckpointMeta> {
  const fail = (msg: string, cause?: unknown): never => {
    throw new CheckpointError(dir, msg, cause === undefined ? undefined : { cause });
  };

  if (ck === null || typeof ck !== 'object') fail('saveCheckpoint needs a checkpoint object');
  const weightList = normalizeWeights(dir, ck.weights);
  const weights = await readTensors(dir, 'weights', weightList);
  // `format: pt` is what transformers expects of a safetensors file's metadata.
  const packed = encodeSafetensors(weights, { format: 'pt' });

  const meta = {
    format: CHECKPOINT_FORMAT,
    kind: ck.kind,
    config: ck.config,
    tokenizer_hash: ck.tokenizerHash,
    step: ck.step,
    parent: ck.parent ?? null,
    created_at: new Date().toISOString(),
    metrics: ck.metrics ?? {},
    weights: { file: WEIGHTS_FILE, sha256: sha256Bytes(packed.bytes), bytes: packed.bytes.length, tensors: packed.tensors },
    ...(ck.extra === undefined ? {} : { extra: ck.extra }),
  };
  if (meta.config === undefined) fail('invalid checkpoint metadata: config: must not be undefined');
  const checked = checkpointMetaSchema.safeParse(meta);
  if (!checked.success) fail(`invalid checkpoint metadata: ${formatZodIssues(checked.error)}`);

  let resumeFiles: { bytes: Uint8Array; json: string } | undefined;
  if (ck.resume !== undefined) {
    const r = ck.resume;
    if (r === null || typeof r !== 'object' || !Array.isArray(r.tensors)) fail('resume.tensors must be an array of { name, tensor }');
    checkNames(dir, 'resume.tensors', r.tensors);
    const optTensors = await readTensors(dir, 'resume.tensors', r.tensors);
    const optPacked = packTensors(optTensors);
    const trainState: TrainStateFile = {
      optimizer: {
        name: r.optimizerName,
        file: OPTIMIZER_FILE,
        sha256: sha256Bytes(optPacked.bytes),
        bytes: optPacked.bytes.length,
        tensors: optPacked.tensors,
      },
      state: r.state,
    };
    if (trainState.state === undefined) fail('invalid resume state: state: must not be undefined (use null)');
    const st = trainStateSchema.safeParse(trainState);
    if (!st.success) fail(`invalid resume state: ${formatZodIssues(st.error)}`);
    resumeFiles = { bytes: optPacked.bytes, json: toJson(dir, 'resume.state', trainState) };
  }

  const metaJson = toJson(dir, 'meta (config/extra)', meta);
  if (ck.tokenizerJson === undefined) fail('tokenizerJson must not be undefined');
  const tokenizerJson = toJson(dir, 'tokenizerJson', ck.tokenizerJson);

  try {
    await writeDirAtomically(dir, async (tmp) => {
      await writeFileDurable(join(tmp, WEIGHTS_FILE), packed.bytes);
      if (resumeFiles) {
        await writeFileDurable(join(tmp, OPTIMIZER_FILE), resumeFiles.bytes);
        await writeFileDurable(join(tmp, TRAIN_STATE_FILE), resumeFiles.json);
      }
      await writeFileDurable(join(tmp, TOKENIZER_FILE), tokenizerJson);
      await writeFileDurable(join(tmp, META_FILE), metaJson);
    });
  } catch (err) {
    fail(`save failed, previous checkpoint (if any) left in place: ${describeError(err)}`, err);
  }
  return checked.data!;
}

function normalizeWeights(dir: string, weights: SaveCheckpointInput['weights']): NamedTensor[] {
  let list: NamedTensor[];
  if (Array.isArray(weights)) list = weights;
  else if (weights !== null && typeof weights === 'object') list = Object.entries(weights).map(([name, tensor]) => ({ name, tensor }));
  else throw new CheckpointError(dir, 'weights must be a record or an array of { name, tensor }');
  checkNames(dir, 'weights', list);
  return list;
}

function checkNames(dir: string, what: string, list: readonly NamedTensor[]): void {
  const seen = new Set<string>();
  for (const [i, entry] of list.entries()) {
    const name = entry?.name;
    if (typeof name !== 'string' || name === '') throw new CheckpointError(dir, `${what}[${i}] has no name`);
    if (seen.has(name)) throw new CheckpointError(dir, `${what}: duplicate tensor name '${name}'`);
    seen.add(name);
  }
}

async function readTensors(dir: string, what: string, list: readonly NamedTensor[]): Promise<RawTensor[]> {
  const out: RawTensor[] = [];
  for (const { name, tensor } of list) {
    const where = `${what}: tensor '${name}'`;
    if (tensor === null || typeof tensor !== 'object' || typeof tensor.data !== 'function') {
      throw new CheckpointError(dir, `${where} is not a tensor`);
    }
    if (tensor.isDisposed) throw new CheckpointError(dir, `${where} is disposed`);
    const dtype = tensor.dtype;
    if (dtype !== 'float32' && dtype !== 'int32') {
      throw new CheckpointError(dir, `${where} has dtype '${dtype}'; only float32 and int32 are stored`);
    }
    const shape = [...tensor.shape];
    const size = shapeSize(shape);
    if (size === null) throw new CheckpointError(dir, `${where} has an invalid shape ${formatShape(shape)}`);
    let data: unknown;
    try {
      data = await tensor.data();
    } catch (err) {
      throw new CheckpointError(dir, `${where}: reading its data failed: ${describeError(err)}`, { cause: err });
    }
    const ok = dtype === 'float32' ? data instanceof Float32Array : data instanceof Int32Array;
    if (!ok || (data as Float32Array | Int32Array).length !== size) {
      throw new CheckpointError(dir, `${where}: data() did not return ${size} ${dtype} values for shape ${formatShape(shape)}`);
    }
    out.push({ name, dtype, shape, data: data as Float32Array | Int32Array });
  }
  return out;
}

function toJson(dir: string, what: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, null, 2);
  } catch (err) {
    throw new CheckpointError(dir, `${what} is not JSON-serialisable: ${describeError(err)}`, { cause: err });
  }
  if (json === undefined) throw new CheckpointError(dir, `${what} is not JSON-serialisable`);
  return json + '\n';
}
