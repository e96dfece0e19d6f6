/**
 * The KV cache of the ONNX Runtime engine: per layer, keys and values as plain Float32Arrays in
 * (B, H, Tc, hs) layout, the graph's `present_*` outputs of the previous call. Row selection, joining
 * and trimming are contiguous copies in JS (a row is one block of H*Tc*hs, a (row, head) pair one block
 * of Tc*hs). Like the tfjs cache, an edit or a step consumes the cache it was given.
 */
import { concatCacheRows, dropLeftColumns, selectCacheRows, sharedLeftPadding, type CacheRows } from '../gpt/cache-rows.ts';
import type { DecodeCache } from '../inference/inference-model.ts';

export interface OrtLayerCache {
  k: Float32Array; // (B, H, Tc, hs)
  v: Float32Array; // (B, H, Tc, hs)
}

export class OrtKVCache implements DecodeCache {
  private layerData: OrtLayerCache[] | null;

  constructor(
    layers: OrtLayerCache[],
    readonly keyValid: Uint8Array,
    readonly nextPos: Int32Array,
    readonly batch: number,
    readonly length: number,
    readonly nHeads: number,
    readonly headSize: number,
  ) {
    this.layerData = layers;
  }

  static from(layers: OrtLayerCache[], rows: CacheRows, nHeads: number, headSize: number): OrtKVCache {
    return new OrtKVCache(layers, rows.keyValid, rows.nextPos, rows.batch, rows.length, nHeads, headSize);
  }

  get layers(): OrtLayerCache[] {
    this.assertLive();
    return this.layerData!;
  }

  assertLive(): void {
    if (!this.layerData) throw new Error('KVCache used after it was consumed or disposed');
  }

  dispose(): void {
    this.layerData = null;
  }

  selectRows(rows: number[]): OrtKVCache {
    this.assertLive();
    const meta = selectCacheRows(this, rows);
    const block = this.nHeads * this.length * this.headSize;
    const pick = (src: Float32Array) => {
      const out = new Float32Array(rows.length * block);
      rows.forEach((r, i) => out.set(src.subarray(r * block, (r + 1) * block), i * block));
      return out;
    };
    const layers = this.layers.map((l) => ({ k: pick(l.k), v: pick(l.v) }));
    this.dispose();
    return OrtKVCache.from(layers, meta, this.nHeads, this.headSize);
  }

  /** All rows of `caches` in order; shorter ones get masked columns on the left. Consumes them. */
  static concatRows(caches: OrtKVCache[]): OrtKVCache {
    if (caches.length === 0) throw new Error('concatRows needs at least one cache');
    caches.forEach((c) => c.assertLive());
    if (caches.length === 1) return caches[0];
    const { nHeads: H, headSize: hs } = caches[0];
    const meta = concatCacheRows(caches);
    const T = meta.length;
    const layers = caches[0].layers.map((_, l) => {
      const k = new Float32Array(meta.batch * H * T * hs);
      const v = new Float32Array(meta.batch * H * T * hs);
      let row = 0;
      for (const c of caches) {
        const pad = T - c.length;
        const src = c.layers[l];
        for (let b = 0; b < c.batch; b++, row++) {
          for (let h = 0; h < H; h++) {
            const from = (b * H + h) * c.length * hs;
            const to = ((row * H + h) * T + pad) * hs;
            k.set(src.k.subarray(from, from + c.length * hs), to);
            v.set(src.v.subarray(from, from + c.length * hs), to);
          }
        }
      }
      return { k, v };
    });
    caches.forEach((c) => c.dispose());
    return OrtKVCache.from(layers, meta, H, hs);
  }

  trimLeft(): OrtKVCache {
    this.assertLive();
    const drop = sharedLeftPadding(this);
    if (drop === 0) return this;
    const meta = dropLeftColumns(this, drop);
    const { nHeads: H, headSize: hs, batch: B } = this;
    const cut = (src: Float32Array) => {
      const out = new Float32Array(B * H * meta.length * hs);
      for (let p = 0; p < B * H; p++) {
        const from = (p * this.length + drop) * hs;
        out.set(src.subarray(from, from + meta.length * hs), p * meta.length * hs);
      }
      return out;
    };
    const layers = this.layers.map((l) => ({ k: cut(l.k), v: cut(l.v) }));
    this.dispose();
    return OrtKVCache.from(layers, meta, H, hs);
  }
}
