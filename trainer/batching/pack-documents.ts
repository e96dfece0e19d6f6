import type { Tokenizer } from '../../model/tokenizer/index.ts';

/** Documents as one token stream, each opened by BOS so the model learns where texts start. */
export function packDocuments(tok: Tokenizer, docs: readonly string[]): Int32Array {
  const parts: number[][] = [];
  let total = 0;
  for (const d of docs) {
    const ids = [tok.special.bos, ...tok.encode(d)];
    parts.push(ids);
    total += ids.length;
  }
  const out = new Int32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
