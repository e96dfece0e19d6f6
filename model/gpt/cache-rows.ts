/**
 * The bookkeeping every KV cache shares, whatever holds its keys and values: which columns of each row
 * are real tokens (left padding is masked) and the position each row's next token gets. Row selection
 * (beam search forks and drops rows), joining batches and trimming shared padding are the same edits
 * on this record for every engine; each cache applies the matching edit to its own storage.
 */
export interface CacheRows {
  /** (B * Tc) row-major: 1 where the column holds a real token, 0 for left padding. */
  readonly keyValid: Uint8Array;
  /** (B): the position id the next token of each sequence will get. */
  readonly nextPos: Int32Array;
  readonly batch: number;
  /** Tc: number of cached columns (padding included). */
  readonly length: number;
}

/** Rows `rows` of `c`, in that order (rows may repeat). */
export function selectCacheRows(c: CacheRows, rows: number[]): CacheRows {
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= c.batch) throw new Error(`KVCache row ${r} out of range [0, ${c.batch})`);
  }
  const keyValid = new Uint8Array(rows.length * c.length);
  const nextPos = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    keyValid.set(c.keyValid.subarray(r * c.length, (r + 1) * c.length), i * c.length);
    nextPos[i] = c.nextPos[r];
  });
  return { keyValid, nextPos, batch: rows.length, length: c.length };
}

/** All rows of `caches` in order, shorter ones left-padded with masked columns to the longest. */
export function concatCacheRows(caches: CacheRows[]): CacheRows {
  const length = Math.max(...caches.map((c) => c.length));
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
  return { keyValid, nextPos, batch, length };
}

/** How many leading columns are padding in every row (at least one column always stays). */
export function sharedLeftPadding(c: CacheRows): number {
  let drop = 0;
  outer: for (; drop < c.length - 1; drop++) {
    for (let r = 0; r < c.batch; r++) if (c.keyValid[r * c.length + drop]) break outer;
  }
  return drop;
}

/** `c` without its first `drop` columns. */
export function dropLeftColumns(c: CacheRows, drop: number): CacheRows {
  const length = c.length - drop;
  const keyValid = new Uint8Array(c.batch * length);
  for (let r = 0; r < c.batch; r++) keyValid.set(c.keyValid.subarray(r * c.length + drop, (r + 1) * c.length), r * length);
  return { keyValid, nextPos: Int32Array.from(c.nextPos), batch: c.batch, length };
}
