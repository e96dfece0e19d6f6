/**
 * Keys and values of the tokens seen so far, per layer, as tfjs tensors, for a batch of sequences
 * that may be left-padded to a common length. A cache is consumed by the operation that extends or
 * reorders it: the old one's tensors are disposed and the returned one is the only valid handle.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerCache } from './attention.ts';
import { concatCacheRows, dropLeftColumns, selectCacheRows, sharedLeftPadding, type CacheRows } from './cache-rows.ts';

export class KVCache implements CacheRows {
  constructor(
    /** Per layer: keysT (B, H, hs, Tc) and values (B, H, Tc, hs). */
    readonly layers: LayerCache[],
    readonly keyValid: Uint8Array,
    readonly nextPos: Int32Array,
    readonly batch: number,
    readonly length: number,
  ) {}

  private disposed = false;

  private static from(layers: LayerCache[], rows: CacheRows): KVCache {
    return new KVCache(layers, rows.keyValid, rows.nextPos, rows.batch, rows.length);
  }

  /** Throws if this cache was already consumed or disposed. */
  assertLive(): void {
    if (this.disposed) throw new Error('KVCache used after it was consumed or disposed');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) {
      l.keysT.dispose();
      l.values.dispose();
    }
  }

  /**
   * A cache whose row i is this cache's row rows[i] (rows may repeat: beam search forks a beam).
   * Consumes this cache.
   */
  selectRows(rows: number[]): KVCache {
    this.assertLive();
    const meta = selectCacheRows(this, rows);
    const index = tf.tensor1d(rows, 'int32');
    const layers = this.layers.map((l) => ({
      keysT: tf.gather(l.keysT, index) as tf.Tensor4D, // (B', H, hs, Tc)
      values: tf.gather(l.values, index) as tf.Tensor4D, // (B', H, Tc, hs)
    }));
    index.dispose();
    this.dispose();
    return KVCache.from(layers, meta);
  }

  /**
   * One cache holding the rows of all `caches` in order. Shorter caches are left-padded with masked
   * columns so every row keeps its own keys; the inputs are consumed.
   */
  static concatRows(caches: KVCache[]): KVCache {
    if (caches.length === 0) throw new Error('concatRows needs at least one cache');
    caches.forEach((c) => c.assertLive());
    if (caches.length === 1) return caches[0];
    const meta = concatCacheRows(caches);
    const length = meta.length;
    const layers: LayerCache[] = [];
    for (let l = 0; l < caches[0].layers.length; l++) {
      const keys: tf.Tensor4D[] = [];
      const values: tf.Tensor4D[] = [];
      for (const c of caches) {
        const pad = length - c.length;
        const { keysT, values: v } = c.layers[l];
        keys.push(pad ? tf.pad(keysT, [[0, 0], [0, 0], [0, 0], [pad, 0]]) : keysT); // (B, H, hs, Tc')
        values.push(pad ? tf.pad(v, [[0, 0], [0, 0], [pad, 0], [0, 0]]) : v); // (B, H, Tc', hs)
      }
      layers.push({ keysT: tf.concat(keys, 0) as tf.Tensor4D, values: tf.concat(values, 0) as tf.Tensor4D });
      caches.forEach((c, i) => {
        if (keys[i] !== c.layers[l].keysT) keys[i].dispose();
        if (values[i] !== c.layers[l].values) values[i].dispose();
      });
    }
    caches.forEach((c) => c.dispose());
    return KVCache.from(layers, meta);
  }

  /**
   * Drops leading columns that are padding in every row (left behind when the longest sequences
   * leave a shared batch), so the cache does not grow with the batch's history. Consumes this cache
   * when it trims; returns it unchanged otherwise.
   */
  trimLeft(): KVCache {
    this.assertLive();
    const drop = sharedLeftPadding(this);
    if (drop === 0) return this;
    const meta = dropLeftColumns(this, drop);
    const length = meta.length;
    const layers = this.layers.map((l) => ({
      keysT: tf.slice(l.keysT, [0, 0, 0, drop], [-1, -1, -1, length]) as tf.Tensor4D, // (B, H, hs, Tc-drop)
      values: tf.slice(l.values, [0, 0, drop, 0], [-1, -1, length, -1]) as tf.Tensor4D, // (B, H, Tc-drop, hs)
    }));
    this.dispose();
    return KVCache.from(layers, meta);
  }
}
