/**
 * Keys and values of the tokens seen so far, per layer, for a batch of sequences that may be
 * left-padded to a common length. A cache is consumed by the operation that extends or reorders it:
 * the old one's tensors are disposed and the returned one is the only valid handle.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerCache } from './attention.ts';

export class KVCache {
  constructor(
    /** Per layer: keysT (B, H, hs, Tc) and values (B, H, Tc, hs). */
    readonly layers: LayerCache[],
    /** (B * Tc) row-major: 1 where the column holds a real token, 0 for left padding. */
    readonly keyValid: Uint8Array,
    /** (B): the position id the next token of each sequence will get. */
    readonly nextPos: Int32Array,
    readonly batch: number,
    /** Tc: number of cached columns (padding included). */
    readonly length: number,
  ) {}

  private disposed = false;

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
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new Error(`KVCache row ${r} out of range [0, ${this.batch})`);
    }
    const index = tf.tensor1d(rows, 'int32');
    const layers = this.layers.map((l) => ({
      keysT: tf.gather(l.keysT, index) as tf.Tensor4D, // (B', H, hs, Tc)
      values: tf.gather(l.values, index) as tf.Tensor4D, // (B', H, Tc, hs)
    }));
    index.dispose();
    const keyValid = new Uint8Array(rows.length * this.length);
    const nextPos = new Int32Array(rows.length);
    rows.forEach((r, i) => {
      keyValid.set(this.keyValid.subarray(r * this.length, (r + 1) * this.length), i * this.length);
      nextPos[i] = this.nextPos[r];
    });
    this.dispose();
    return new KVCache(layers, keyValid, nextPos, rows.length, this.length);
  }

  /**
   * One cache holding the rows of all `caches` in order. Shorter caches are left-padded with masked
   * columns so every row keeps its own keys; the inputs are consumed.
   */
  static concatRows(caches: KVCache[]): KVCache {
    if (caches.length === 0) throw new Error('concatRows needs at least one cache');
    caches.forEach((c) => c.assertLive());
    if (caches.length === 1) return caches[0];
    const length = Math.max(...caches.map((c) => c.length));
    const nLayers = caches[0].layers.length;
    const layers: LayerCache[] = [];
    for (let l = 0; l < nLayers; l++) {
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
    const batch = caches.reduce((a, c) => a + c.batch, 0);
    const keyValid = new Uint8Array(batch * length);
    const nextPos = new Int32Array(batch);
    let row = 0;
    for (const c of caches) {
      const pad = length - c.length;
      for (let r = 0; r < c.batch; r++, row++) {
        keyValid.set(c.keyValid.subarray(r * c.length, (r + 1) * c.length), row * length + pad);
        nextPos[row] = c.nextPos[r];
      }
    }
    caches.forEach((c) => c.dispose());
    return new KVCache(layers, keyValid, nextPos, batch, length);
  }

  /**
   * Drops leading columns that are padding in every row (left behind when the longest sequences
   * leave a shared batch), so the cache does not grow with the batch's history. Consumes this cache
   * when it trims; returns it unchanged otherwise.
   */
  trimLeft(): KVCache {
    this.assertLive();
    let drop = 0;
    outer: for (; drop < this.length - 1; drop++) {
      for (let r = 0; r < this.batch; r++) if (this.keyValid[r * this.length + drop]) break outer;
    }
    if (drop === 0) return this;
    const length = this.length - drop;
    const layers = this.layers.map((l) => ({
      keysT: tf.slice(l.keysT, [0, 0, 0, drop], [-1, -1, -1, length]) as tf.Tensor4D, // (B, H, hs, Tc-drop)
      values: tf.slice(l.values, [0, 0, drop, 0], [-1, -1, length, -1]) as tf.Tensor4D, // (B, H, Tc-drop, hs)
    }));
    const keyValid = new Uint8Array(this.batch * length);
    for (let r = 0; r < this.batch; r++) keyValid.set(this.keyValid.subarray(r * this.length + drop, (r + 1) * this.length), r * length);
    const nextPos = Int32Array.from(this.nextPos);
    this.dispose();
    return new KVCache(layers, keyValid, nextPos, this.batch, length);
  }
}
