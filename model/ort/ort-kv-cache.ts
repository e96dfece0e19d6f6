/**
 * The KV cache of the ONNX Runtime engine: the shared row bookkeeping (model/gpt/cache-rows.ts) over a
 * CacheStore whose buffers the step graph reads in place. Like the tfjs cache, an edit or a step
 * consumes the cache it was given; the store passes to the cache it returns, edited in place where
 * it has room.
 */
import { MASKED } from '../gpt/batch-layout.ts';
import { concatCacheRows, dropLeftColumns, selectCacheRows, sharedLeftPadding, type CacheRows } from '../gpt/cache-rows.ts';
import type { DecodeCache } from '../inference/inference-model.ts';
import { CacheStore, columnsFor } from './cache-store.ts';


export class OrtKVCache implements DecodeCache {
  private held: CacheStore | null;

  constructor(
    store: CacheStore,
    readonly keyValid: Uint8Array,
    readonly nextPos: Int32Array,
    readonly batch: number,
    readonly length: number,
    /** The model's window: column capacity grows in powers of two up to it. */
    readonly context: number,
  ) {
    this.held = store;
  }

  static from(store: CacheStore, rows: CacheRows, context: number): OrtKVCache {
    return new OrtKVCache(store, rows.keyValid, rows.nextPos, rows.batch, rows.length, context);
  }

  get store(): CacheStore {
    this.assertLive();
    return this.held!;
  }

  assertLive(): void {
    if (!this.held) throw new Error('KVCache used after it was consumed or disposed');
  }

  dispose(): void {
    this.held = null;
  }

  /** Makes sure a step can write column `length` (grows the store, not consuming this cache). */
  reserveNextColumn(): void {
    this.held = this.store.withRoom(this.batch, this.length + 1, this.batch, this.length, this.context);
  }

  /**
   * The step's additive mask over the store's C columns and the new token: (B, 1, 1, C+1). Real past
   * columns are open, padding and unused capacity closed, the new token sees itself.
   */
  stepBias(): Float32Array {
    const C = this.store.colCap;
    const bias = new Float32Array(this.batch * (C + 1)).fill(MASKED);
    for (let b = 0; b < this.batch; b++) {
      for (let j = 0; j < this.length; j++) if (this.keyValid[b * this.length + j]) bias[b * (C + 1) + j] = 0;
      bias[b * (C + 1) + C] = 0;
    }
    return bias;
  }

  /** This cache with the step's new column appended (its kt/v already written by the caller). Consumes this cache. */
  appended(): OrtKVCache {
    const store = this.store;
    const T = this.length + 1;
    const keyValid = new Uint8Array(this.batch * T);
    for (let b = 0; b < this.batch; b++) {
      keyValid.set(this.keyValid.subarray(b * this.length, (b + 1) * this.length), b * T);
      keyValid[b * T + this.length] = 1;
    }
    const nextPos = Int32Array.from(this.nextPos, (p) => p + 1);
    this.dispose();
    return new OrtKVCache(store, keyValid, nextPos, this.batch, T, this.context);
  }

  selectRows(rows: number[]): OrtKVCache {
    const meta = selectCacheRows(this, rows);
    const store = this.store.selectRows(rows);
    this.dispose();
    return OrtKVCache.from(store, meta, this.context);
  }

  /** All rows of `caches` in order; shorter ones get masked columns on the left. Consumes them. */
  static concatRows(caches: OrtKVCache[]): OrtKVCache {
    if (caches.length === 0) throw new Error('concatRows needs at least one cache');
    caches.forEach((c) => c.assertLive());
    if (caches.length === 1) return caches[0];
    const meta = concatCacheRows(caches);
    const T = meta.length;
    const first = caches[0];
    // The first cache's rows stay where they are (shifted right to the common length); the others are copied in.
    let store = first.store;
    if (store.rowCap < meta.batch || store.colCap < T) {
      store = CacheStore.alloc(store.layers.length, meta.batch, columnsFor(T + 1, first.context), store.nHeads, store.headSize);
      for (let r = 0; r < first.batch; r++) store.copyRow(first.store, r, 0, r, T - first.length, first.length);
    } else if (T > first.length) {
      store.shiftColumns(first.batch, 0, T - first.length, first.length);
    }
    let row = first.batch;
    for (const c of caches.slice(1)) {
      for (let r = 0; r < c.batch; r++, row++) store.copyRow(c.store, r, 0, row, T - c.length, c.length);
    }
    caches.forEach((c) => c.dispose());
    return OrtKVCache.from(store, meta, first.context);
  }

  trimLeft(): OrtKVCache {
    const drop = sharedLeftPadding(this);
    if (drop === 0) return this;
    const meta = dropLeftColumns(this, drop);
    const store = this.store;
    store.shiftColumns(this.batch, drop, 0, meta.length);
    this.dispose();
    return OrtKVCache.from(store, meta, this.context);
  }
}
