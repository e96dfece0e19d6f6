/**
 * The safetensors file format (https://github.com/huggingface/safetensors). Checkpoints write float32
 * and int32 tensors; reading also accepts F16, BF16 and F64 (converted to float32, as weights saved in
 * half precision come) and checks the layout of tensors of any other dtype, which are only listed.
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } }` padded with
 * spaces so the data starts 8-byte aligned, then the tensors' raw little-endian bytes, offsets
 * relative to the start of the data. Readers (Python `safetensors`, `transformers`) insist that the
 * tensors tile the data exactly, with no gaps and no overlap; 4-byte elements written back to back do.
 * Pure data code: no tfjs, no file system.
 */
import type { TensorDtype, TensorEntry } from './meta-schema.ts';
import { formatShape, packTensors, shapeSize, unpackTensors, type RawTensor } from './tensor-file.ts';

const DTYPE_TO_ST: Record<TensorDtype, string> = { float32: 'F32', int32: 'I32' };
/** The checkpoint dtype a safetensors dtype stands for, if any. */
export function checkpointDtype(dtype: string): TensorDtype | undefined {
  return (Object.keys(DTYPE_TO_ST) as TensorDtype[]).find((d) => DTYPE_TO_ST[d] === dtype);
}

/** Bytes per element of each safetensors dtype. */
const ELEMENT_BYTES: Record<string, number> = { BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8 };
/** Dtypes read as float32. */
const AS_FLOAT32 = new Set(['F32', 'F16', 'BF16', 'F64']);
/** A header above this is not a model's; refusing it keeps a corrupt length from allocating gigabytes. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

/** A tensor as the header describes it: its safetensors dtype, and its bytes relative to the data start. */
interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  length: number;
}

interface SafetensorsFile {
  /** Tensors in data order. */
  tensors: SafetensorsEntry[];
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
  const tensors: SafetensorsEntry[] = [];
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
    const dtype = String(e.dtype);
    const elementBytes = ELEMENT_BYTES[dtype];
    if (elementBytes === undefined) throw new Error(`tensor '${name}' has unknown dtype ${JSON.stringify(e.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shapeSize(shape as number[]) === null) throw new Error(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new Error(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    const length = shapeSize(shape as number[])! * elementBytes;
    if (end - begin !== length) {
      throw new Error(`tensor '${name}' spans ${end - begin} bytes but shape ${formatShape(shape as number[])} needs ${length}`);
    }
    tensors.push({ name, dtype, shape: [...(shape as number[])], offset: begin, length });
  }
  tensors.sort((a, b) => a.offset - b.offset);
  let expected = 0;
  for (const t of tensors) {
    if (t.offset !== expected) throw new Error(`tensor '${t.name}' starts at data byte ${t.offset}, expected ${expected} (tensors must tile the data)`);
    expected = t.offset + t.length;
  }
  if (dataStart + expected !== bytes.length) {
    throw new Error(`data section is ${bytes.length - dataStart} bytes but the tensors cover ${expected}`);
  }
  return { tensors, metadata, dataStart };
}

/**
 * Reads the tensors of a safetensors file (copies; never aliases `bytes`): F32 and I32 as they are,
 * F16, BF16 and F64 as float32; tensors of other dtypes are named in `skipped`.
 */
export function decodeSafetensors(bytes: Uint8Array): { tensors: RawTensor[]; metadata: Record<string, string>; skipped: { name: string; dtype: string }[] } {
  const file = parseSafetensorsHeader(bytes);
  const data = bytes.subarray(file.dataStart);
  const tensors: RawTensor[] = [];
  const skipped: { name: string; dtype: string }[] = [];
  for (const t of file.tensors) {
    if (t.dtype === 'F32' || t.dtype === 'I32') {
      tensors.push(unpackTensors(data, [{ ...t, dtype: checkpointDtype(t.dtype)! }])[0]);
    } else if (AS_FLOAT32.has(t.dtype)) {
      tensors.push({ name: t.name, dtype: 'float32', shape: t.shape, data: toFloat32(data.subarray(t.offset, t.offset + t.length), t.dtype) });
    } else {
      skipped.push({ name: t.name, dtype: t.dtype });
    }
  }
  return { tensors, metadata: file.metadata, skipped };
}

/** Little-endian F16 / BF16 / F64 values as float32 (F16 subnormals, infinities and NaN included). */
function toFloat32(src: Uint8Array, dtype: string): Float32Array {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (dtype === 'F64') return Float32Array.from({ length: src.length / 8 }, (_, i) => view.getFloat64(i * 8, true));
  const n = src.length / 2;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const h = view.getUint16(i * 2, true);
    if (dtype === 'BF16') {
      bits[i] = h << 16;
      continue;
    }
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0x1f) bits[i] = sign | 0x7f800000 | (frac << 13);
    else if (exp !== 0) bits[i] = sign | ((exp + 112) << 23) | (frac << 13);
    else if (frac === 0) bits[i] = sign;
    else {
      // Subnormal half: normalise the fraction into a float32 exponent.
      let e = 113;
      let f = frac;
      while ((f & 0x400) === 0) {
        f <<= 1;
        e -= 1;
      }
      bits[i] = sign | (e << 23) | ((f & 0x3ff) << 13);
    }
  }
  return new Float32Array(bits.buffer);
}
