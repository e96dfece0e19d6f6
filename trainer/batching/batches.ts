/**
 * Training batches as a pure function of (seed, epoch, index), so that a run resumed at a position
 * sees exactly the batches the uninterrupted run would have seen.
 */
import { seededRng } from '../../model/decode/rng.ts';

export interface Batch {
  /** Inputs and next-token targets, row-major (B, T). */
  x: Int32Array;
  y: Int32Array;
  /** Loss weight per target: 1 on trained tokens, 0 on padding (and, for SFT, on non-assistant tokens). */
  w: Float32Array;
  rows: number;
  cols: number;
  /** Number of targets with weight > 0. */
  tokens: number;
}

export interface BatchSource {
  batchesPerEpoch: number;
  batch(epoch: number, index: number): Batch;
}

/** A permutation of 0..n-1 drawn from `seed` (Fisher-Yates). */
export function permutation(n: number, seed: number): Uint32Array {
  const rng = seededRng(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + epoch * 0x632be5ab) >>> 0;
}

/**
 * Pretraining: documents packed into one token stream (a separator between them), cut into windows
 * of T+1 tokens; each epoch starts at a different offset and visits the windows in a new order.
 */
export function packedSource(stream: Int32Array, opts: { batchSize: number; context: number; seed: number }): BatchSource {
  const { batchSize: B, context: T, seed } = opts;
  const windows = Math.floor((stream.length - 1) / T) - 1;
  if (windows < B) throw new Error(`the token stream (${stream.length} tokens) holds fewer than one batch of ${B} windows of ${T + 1} tokens`);
  const batchesPerEpoch = Math.floor(windows / B);
  const perEpoch = new Map<number, { offset: number; order: Uint32Array }>();
  const plan = (epoch: number) => {
    let p = perEpoch.get(epoch);
    if (!p) {
      const s = epochSeed(seed, epoch);
      p = { offset: Math.floor(seededRng(s)() * T), order: permutation(windows, s + 1) };
      perEpoch.clear();
      perEpoch.set(epoch, p);
    }
    return p;
  };
  return {
    batchesPerEpoch,
    batch(epoch, index) {
      const { offset, order } = plan(epoch);
      const x = new Int32Array(B * T);
      const y = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        const start = offset + order[index * B + b] * T;
        x.set(stream.subarray(start, start + T), b * T);
        y.set(stream.subarray(start + 1, start + T + 1), b * T);
      }
      return { x, y, w: new Float32Array(B * T).fill(1), rows: B, cols: T, tokens: B * T };
    },
  };
}

export interface MaskedSequence {
  ids: number[];
  /** 1 where the token is a training target (SFT: assistant tokens and their end-of-turn). */
  mask: number[];
}

/**
 * Fine-tuning: rendered dialogues, each a row padded on the right to the longest in its batch. Row
 * r's targets are ids[1..] and their weight is the mask of the target token. Sequences longer than T+1
 * must be cut by the caller.
 */
export function sequenceSource(seqs: MaskedSequence[], opts: { batchSize: number; context: number; seed: number; padId: number }): BatchSource {
  const { batchSize: B, context: T, seed, padId } = opts;
  if (seqs.length < B) throw new Error(`${seqs.length} sequences are fewer than one batch of ${B}`);
  for (const s of seqs) if (s.ids.length > T + 1) throw new Error(`a sequence of ${s.ids.length} tokens exceeds context + 1 = ${T + 1}`);
  const batchesPerEpoch = Math.floor(seqs.length / B);
  let cached: { epoch: number; order: Uint32Array } | null = null;
  return {
    batchesPerEpoch,
    batch(epoch, index) {
      if (!cached || cached.epoch !== epoch) cached = { epoch, order: permutation(seqs.length, epochSeed(seed, epoch)) };
      const rows = Array.from({ length: B }, (_, b) => seqs[cached!.order[index * B + b]]);
      // Only as wide as the longest sequence in the batch: dialogues are mostly far shorter than T.
      const cols = Math.max(1, ...rows.map((s) => s.ids.length - 1));
      const x = new Int32Array(B * cols).fill(padId);
      const y = new Int32Array(B * cols).fill(padId);
      const w = new Float32Array(B * cols);
      let tokens = 0;
      rows.forEach((s, b) => {
        for (let t = 0; t + 1 < s.ids.length; t++) {
          x[b * cols + t] = s.ids[t];
          y[b * cols + t] = s.ids[t + 1];
          w[b * cols + t] = s.mask[t + 1];
          tokens += s.mask[t + 1];
        }
      });
      return { x, y, w, rows: B, cols, tokens };
    },
  };
}
