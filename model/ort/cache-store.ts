/**
 * The buffers behind an ONNX Runtime KV cache: per layer, keys transposed (rowCap, H, hs, colCap) and
 * values (rowCap, H, colCap, hs), allocated with room to spare so that a step only writes its new
 * column and the graph reads the first `batch` rows in place (a contiguous prefix of each buffer).
 *
 * A cache's real columns are 0 .. length-1 of each row; the rest of the capacity is masked by the
 * step's bias. Moving rows (dropping, reordering, repeating) copies whole rows, one contiguous run per
 * buffer; edits that move columns (joins, trims, growth) copy only the real ones. A store is handed from cache to cache as edits
 * consume them (ort-kv-cache.ts), so exactly one live cache owns it at a time.
 */

export interface LayerBuffers {
  kt: Float32Array; // (rowCap, H, hs, colCap)
  v: Float32Array; // (rowCap, H, colCap, hs)
}

/**
 * Column capacity for `need` columns: the next power of two (at least 16), capped at the window while
 * `need` fits in it. (Columns pass the window only when rows were dropped without trimming their
 * padding; growth stays geometric there too.)
 */
export function columnsFor(need: number, context: number): number {
  let cap = 16;
  while (cap < need) cap *= 2;
  return need <= context ? Math.min(cap, context) : cap;
}

/** Below this many floats a plain loop beats `set`, which allocates a subarray view per call. */
const LOOP_COPY_MAX = 64;

/** Copies n floats between (possibly the same) arrays; within one array the ranges may overlap. */
function copyFloats(dst: Float32Array, dstAt: number, src: Float32Array, srcAt: number, n: number): void {
  if (n <= 0) return;
  if (dst === src) dst.copyWithin(dstAt, srcAt, srcAt + n);
  else if (n <= LOOP_COPY_MAX) for (let i = 0; i < n; i++) dst[dstAt + i] = src[srcAt + i];
  else dst.set(src.subarray(srcAt, srcAt + n), dstAt);
}

export class CacheStore {
  /** Rows parked during a row permutation (beam search reorders rows every step); grown on demand. */
  private scratch: CacheStore | null = null;

  private constructor(
    readonly layers: LayerBuffers[],
    readonly rowCap: number,
    readonly colCap: number,
    readonly nHeads: number,
    readonly headSize: number,
  ) {}

  static alloc(nLayers: number, rowCap: number, colCap: number, nHeads: number, headSize: number): CacheStore {
    const size = rowCap * nHeads * colCap * headSize;
    const layers = Array.from({ length: nLayers }, () => ({ kt: new Float32Array(size), v: new Float32Array(size) }));
    return new CacheStore(layers, rowCap, colCap, nHeads, headSize);
  }

  /** An empty store of the same layer shape. */
  private sized(rowCap: number, colCap: number): CacheStore {
    return CacheStore.alloc(this.layers.length, rowCap, colCap, this.nHeads, this.headSize);
  }

  /** The first `batch` rows of every layer, as the graph's past inputs: no copy. */
  views(batch: number): LayerBuffers[] {
    const n = batch * this.nHeads * this.headSize * this.colCap;
    return this.layers.map((l) => ({ kt: l.kt.subarray(0, n), v: l.v.subarray(0, n) }));
  }

  /** Copies `cols` columns of row `src` of `from` (starting at `srcCol`) into row `dst` at `dstCol`. */
  copyRow(from: CacheStore, src: number, srcCol: number, dst: number, dstCol: number, cols: number): void {
    const H = this.nHeads;
    const hs = this.headSize;
    for (let l = 0; l < this.layers.length; l++) {
      const a = from.layers[l];
      const b = this.layers[l];
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < hs; d++) {
          copyFloats(b.kt, ((dst * H + h) * hs + d) * this.colCap + dstCol, a.kt, ((src * H + h) * hs + d) * from.colCap + srcCol, cols);
        }
        copyFloats(b.v, ((dst * H + h) * this.colCap + dstCol) * hs, a.v, ((src * H + h) * from.colCap + srcCol) * hs, cols * hs);
      }
    }
  }

  /**
   * Row `src` of `from` (a store of the same capacity) becomes row `dst`, all of it: one contiguous
   * copy per buffer instead of H x hs runs of the real columns. Copying the unused capacity too is
   * cheaper than 128 short copies; under the load test row moves were the engine thread's largest
   * cost after the forward itself (beam search reorders its rows every step).
   */
  private copyWholeRow(from: CacheStore, src: number, dst: number): void {
    const block = this.nHeads * this.headSize * this.colCap;
    for (let l = 0; l < this.layers.length; l++) {
      const a = from.layers[l];
      const b = this.layers[l];
      if (a === b) {
        b.kt.copyWithin(dst * block, src * block, (src + 1) * block);
        b.v.copyWithin(dst * block, src * block, (src + 1) * block);
      } else {
        b.kt.set(a.kt.subarray(src * block, (src + 1) * block), dst * block);
        b.v.set(a.v.subarray(src * block, (src + 1) * block), dst * block);
      }
    }
  }

  /**
   * Writes a forward's new columns (layer l's kt (B, H, hs, Tn) and v (B, H, Tn, hs), as the graph
   * outputs them) into rows 0..B-1 at column `col`.
   */
  writeColumns(l: number, kt: Float32Array, v: Float32Array, batch: number, tn: number, col: number): void {
    const H = this.nHeads;
    const hs = this.headSize;
    const dst = this.layers[l];
    for (let p = 0; p < batch * H; p++) {
      if (tn === 1) {
        // A step's one column: a strided scatter of the keys, one run of hs values.
        for (let d = 0; d < hs; d++) dst.kt[(p * hs + d) * this.colCap + col] = kt[p * hs + d];
      } else {
        for (let d = 0; d < hs; d++) copyFloats(dst.kt, (p * hs + d) * this.colCap + col, kt, (p * hs + d) * tn, tn);
      }
      copyFloats(dst.v, (p * this.colCap + col) * hs, v, p * tn * hs, tn * hs);
    }
  }

  /** This store, or a larger copy of its first `batch` rows' `length` columns, with room for `rows` x `cols`. */
  withRoom(rows: number, cols: number, batch: number, length: number, context: number): CacheStore {
    if (rows <= this.rowCap && cols <= this.colCap) return this;
    const out = this.sized(Math.max(rows, this.rowCap), cols <= this.colCap ? this.colCap : columnsFor(cols, context));
    for (let r = 0; r < batch; r++) out.copyRow(this, r, 0, r, 0, length);
    return out;
  }

  /**
   * Row i becomes old row rows[i] (rows may repeat or reorder). In place: a drop of rows (increasing
   * sources) copies forward; any other order parks the moved rows first.
   */
  selectRows(rows: number[]): CacheStore {
    if (rows.length > this.rowCap) {
      const out = this.sized(rows.length, this.colCap);
      rows.forEach((r, i) => out.copyWholeRow(this, r, i));
      return out;
    }
    const increasing = rows.every((r, i) => i === 0 || r > rows[i - 1]);
    if (increasing) {
      // rows[i] >= i, so a source is read before any later destination can overwrite it.
      rows.forEach((r, i) => r !== i && this.copyWholeRow(this, r, i));
      return this;
    }
    const moved = rows.map((r, i) => ({ r, i })).filter(({ r, i }) => r !== i);
    const sources = [...new Set(moved.map((m) => m.r))];
    if (!this.scratch || this.scratch.rowCap < sources.length || this.scratch.colCap !== this.colCap) {
      this.scratch = this.sized(Math.max(sources.length, this.scratch?.rowCap ?? 0), this.colCap);
    }
    const park = this.scratch;
    sources.forEach((r, k) => park.copyWholeRow(this, r, k));
    for (const { r, i } of moved) this.copyWholeRow(park, sources.indexOf(r), i);
    return this;
  }

  /** Moves every row's columns [from, from+cols) to [to, to+cols) (overlap allowed). */
  shiftColumns(batch: number, from: number, to: number, cols: number): void {
    for (let r = 0; r < batch; r++) this.copyRow(this, r, from, r, to, cols);
  }
}
