/**
 * GPT-2's reversible map from bytes to printable characters (openai/gpt-2 encoder.py
 * `bytes_to_unicode`), which byte-level BPE files (vocab.json, merges.txt, tokenizer.json) use to
 * spell tokens: printable Latin-1 bytes stand for themselves, the other 68 are shifted to U+0100...
 */
function build(): { toChar: string[]; toByte: Map<string, number> } {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const toChar: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) toChar[b] = String.fromCharCode(keep.includes(b) ? b : 256 + shifted++);
  return { toChar, toByte: new Map(toChar.map((c, b) => [c, b] as const)) };
}

const { toChar, toByte } = build();

/** A token's bytes spelled in the byte-level alphabet. */
export function bytesToToken(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += toChar[b];
  return s;
}

/** A byte-level token's bytes, or null if it has a character outside the byte-level alphabet. */
export function tokenToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = toByte.get(token[i]);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}
