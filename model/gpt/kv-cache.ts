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
}
