/** Splits a batch by rows into `n` contiguous shards (fewer when it has fewer rows). */
import type { Batch } from '../batching/batches.ts';

export function shardBatch(b: Batch, n: number): Batch[] {
  const shards: Batch[] = [];
  const k = Math.max(1, Math.min(n, b.rows));
  for (let i = 0; i < k; i++) {
    const r0 = Math.floor((i * b.rows) / k);
    const r1 = Math.floor(((i + 1) * b.rows) / k);
    const lo = r0 * b.cols;
    const hi = r1 * b.cols;
    const w = b.w.slice(lo, hi);
    let tokens = 0;
    for (const v of w) if (v > 0) tokens++;
    shards.push({ x: b.x.slice(lo, hi), y: b.y.slice(lo, hi), w, rows: r1 - r0, cols: b.cols, tokens });
  }
  return shards;
}
