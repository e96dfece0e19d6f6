/**
 * The safetensors file format (https://github.com/huggingface/safetensors), for float32 and int32
 * tensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } }` padded with
 * spaces so the data starts 8-byte aligned, then the tensors' raw little-endian bytes, offsets
 * relative to the start of the data. Readers (Python `safetensors`, `transformers`) insist that the
 * tensors tile the data exactly, with no gaps and no overlap; 4-byte elements written back to back do.
 * Pure data code: no tfjs, no file system.
 */
import type { TensorDtype, TensorEntry } from './meta-schema.ts';
import { formatShape, packTensors, shapeSize, unpackTensors, type RawTensor } from './tensor-file.ts';

const DTYPE_TO_ST: Record<TensorDtype, string> = { float32: 'F32', int32: 'I32' };
const ST_TO_DTYPE: Record<string, TensorDtype> = { F32: 'float32', I32: 'int32' };
/** A header above this is not a model's; refusing it keeps a corrupt length from allocating gigabytes. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

export interface SafetensorsFile {
  /** Tensors in data order; offsets relative to `dataStart`. */
  tensors: TensorEntry[];
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** Serialises tensors (in the given order) with optional string metadata. */
export function encodeSafetensors(list: readonly RawTensor[], metadata: Record<string, string> = {}): { bytes: Uint8Array; tensors: TensorEntry[] } {
  const packed = packTensors(list);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  for (const t of packed.tensors) {
    header[t.name] = { dtype: DTYPE_TO_ST[t.dtype], shape: t.shape, data_offsets: [t.offset, t.offset + t.length] };
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const bytes = new Uint8Array(8 + json.length + packed.bytes.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(packed.bytes, 8 + json.length);
  return { bytes, tensors: packed.tensors };
}

/**
 * Parses and checks a safetensors file's header against the file's size: known dtypes, offsets that
 * match the shapes, tensors tiling the data section exactly. Throws an Error naming the problem.
 */
export function parseSafetensorsHeader(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`is ${bytes.length} bytes, too short for a safetensors header`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    throw new Error(`declares a ${n}-byte header, more than the file's ${bytes.length - 8} bytes after the length (or the ${MAX_HEADER_BYTES}-byte limit)`);
  }
  const dataStart = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, Number(n)).toString('utf8'));
  } catch (err) {
    throw new Error(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) throw new Error('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') throw new Error(`tensor '${name}' has no description`);
    const dtype = ST_TO_DTYPE[String(e.dtype)];
    if (dtype === undefined) throw new Error(`tensor '${name}' has dtype ${JSON.stringify(e.dtype)}; only F32 and I32 are read`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shapeSize(shape as number[]) === null) throw new Error(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new Error(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    const length = shapeSize(shape as number[])! * 4;
    if (end - begin !== length) {
      throw new Error(`tensor '${name}' spans ${end - begin} bytes but shape ${formatShape(shape as number[])} needs ${length}`);
    }
    tensors.push({ name, dtype, shape: [...(shape as number[])], offset: begin, length });
  }
  tensors.sort((a, b) => a.offset - b.offset);
  let expected = 0;
  for (const t of tensors) {
    if (t.offset !== expected) throw new Error(`tensor '${t.name}' starts at data byte ${t.offset}, expected ${expected} (tensors must tile the data)`);
    if (t.offset % 4 !== 0) throw new Error(`tensor '${t.name}' starts at data byte ${t.offset}, not 4-byte aligned`);
    expected = t.offset + t.length;
  }
  if (dataStart + expected !== bytes.length) {
    throw new Error(`data section is ${bytes.length - dataStart} bytes but the tensors cover ${expected}`);
  }
  return { tensors, metadata, dataStart };
}

/** Reads every tensor of a safetensors file (copies; never aliases `bytes`). */
export function decodeSafetensors(bytes: Uint8Array): { tensors: RawTensor[]; metadata: Record<string, string> } {
  const file = parseSafetensorsHeader(bytes);
  return { tensors: unpackTensors(bytes.subarray(file.dataStart), file.tensors), metadata: file.metadata };
}
