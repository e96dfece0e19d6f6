/**
 * Packing a list of tensors into one little-endian binary buffer with a manifest,
 * validating such a manifest against a file size, and unpacking it again.
 * Pure data code: no tfjs, no file system.
 */
import { endianness } from 'node:os';
import type { TensorDtype, TensorEntry } from './meta-schema.ts';

export interface RawTensor {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

const BYTES_PER_ELEMENT = 4;
const ALIGN = 4;
const HOST_IS_LE = endianness() === 'LE';

/** Number of elements of a shape, or null if the shape is not a list of safe non-negative integers. */
export function shapeSize(shape: readonly number[]): number | null {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return null;
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Concatenates the tensors' little-endian bytes (4-byte aligned offsets) and returns the manifest. */
export function packTensors(list: readonly RawTensor[]): { bytes: Uint8Array; tensors: TensorEntry[] } {
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const t of list) {
    offset = alignUp(offset);
    const length = t.data.length * BYTES_PER_ELEMENT;
    tensors.push({ name: t.name, shape: [...t.shape], dtype: t.dtype, offset, length });
    offset += length;
  }
  const bytes = new Uint8Array(offset);
  list.forEach((t, i) => writeLE(bytes, tensors[i].offset, t.data));
  return { bytes, tensors };
}

/**
 * Checks that a manifest is self-consistent and fits a file of `fileBytes` bytes:
 * unique non-empty names, known dtypes, length === product(shape) * 4, 4-byte aligned offsets,
 * every tensor inside the file, no two tensors overlapping.
 * Returns an error message, or null when the manifest is fine.
 */
export function validateTensorManifest(tensors: readonly TensorEntry[], fileBytes: number): string | null {
  const seen = new Set<string>();
  for (const [i, t] of tensors.entries()) {
    const where = `tensor ${i} '${t.name}'`;
    if (t.name === '') return `tensor ${i} has an empty name`;
    if (seen.has(t.name)) return `duplicate tensor name '${t.name}'`;
    seen.add(t.name);
    if (t.dtype !== 'float32' && t.dtype !== 'int32') return `${where} has unsupported dtype '${String(t.dtype)}'`;
    const size = shapeSize(t.shape);
    if (size === null) return `${where} has an invalid shape ${formatShape(t.shape)}`;
    const expectedLength = size * BYTES_PER_ELEMENT;
    if (t.length !== expectedLength) {
      return `${where} has length ${t.length} bytes but shape ${formatShape(t.shape)} needs ${expectedLength}`;
    }
    if (!Number.isSafeInteger(t.offset) || t.offset < 0 || t.offset % ALIGN !== 0) {
      return `${where} has offset ${t.offset}, not a non-negative multiple of ${ALIGN}`;
    }
    if (t.offset + t.length > fileBytes) {
      return `${where} spans bytes ${t.offset}..${t.offset + t.length}, beyond the file size ${fileBytes}`;
    }
  }
  const byOffset = [...tensors].filter((t) => t.length > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const cur = byOffset[i];
    if (cur.offset < prev.offset + prev.length) return `tensors '${prev.name}' and '${cur.name}' overlap`;
  }
  return null;
}

/** Copies each tensor's data out of `bytes` (manifest must have been validated against bytes.length). */
export function unpackTensors(bytes: Uint8Array, tensors: readonly TensorEntry[]): RawTensor[] {
  return tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: [...t.shape],
    data: readLE(bytes, t.offset, t.length / BYTES_PER_ELEMENT, t.dtype),
  }));
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

function writeLE(dst: Uint8Array, offset: number, data: Float32Array | Int32Array): void {
  if (HOST_IS_LE) {
    dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    return;
  }
  // Big-endian host: swap through the raw 32-bit pattern so NaN payloads stay bit-exact.
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const view = new DataView(dst.buffer, dst.byteOffset + offset, data.byteLength);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
}

function readLE(src: Uint8Array, offset: number, count: number, dtype: TensorDtype): Float32Array | Int32Array {
  // Copy into a fresh, aligned buffer: the result never aliases `src`.
  const buf = new ArrayBuffer(count * BYTES_PER_ELEMENT);
  if (HOST_IS_LE) {
    new Uint8Array(buf).set(src.subarray(offset, offset + count * BYTES_PER_ELEMENT));
  } else {
    const words = new Uint32Array(buf);
    const view = new DataView(src.buffer, src.byteOffset + offset, count * BYTES_PER_ELEMENT);
    for (let i = 0; i < count; i++) words[i] = view.getUint32(i * 4, true);
  }
  return dtype === 'float32' ? new Float32Array(buf) : new Int32Array(buf);
}
