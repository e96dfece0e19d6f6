/** Token sequences of different lengths as one right-padded batch (RL scoring and updates). */
export interface PaddedBatch {
  /** (rows, cols) row-major, padded with `padId` on the right. */
  ids: Int32Array;
  rows: number;
  cols: number;
  lengths: number[];
}

export function padRight(seqs: readonly (readonly number[])[], padId: number): PaddedBatch {
  const cols = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(seqs.length * cols).fill(padId);
  seqs.forEach((s, r) => ids.set(s, r * cols));
  return { ids, rows: seqs.length, cols, lengths: seqs.map((s) => s.length) };
}

/** The last `max` tokens of a sequence (the reply is at the end, so that is what must survive). */
export function keepTail(ids: readonly number[], max: number): number[] {
  return ids.length > max ? ids.slice(ids.length - max) : [...ids];
}
