/**
 * A byte-level BPE driven only by a Hugging Face tokenizer.json: its vocab, merges, added tokens and
 * pre-tokenizer regex. Written from the format's description, sharing no code with model/tokenizer,
 * so tests can check that an exported tokenizer.json means what our tokenizer does. The merge loop is
 * the classic one of openai/gpt-2's encoder.py (lowest-ranked pair, all its occurrences, repeat).
 *
 * Text becomes bytes by generalised UTF-8 (a lone surrogate as its 3-byte form): the `tokenizers`
 * library takes Rust strings, which cannot hold lone surrogates at all; this is what our tokenizer
 * does with them, written out again here.
 */
const GPT2_REGEX = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : next++));
  return chars;
}

function utf8Generalised(text: string): number[] {
  const out: number[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!; // a lone surrogate comes through as its own code point
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  }
  return out;
}

export class ReferenceBpe {
  private readonly vocab: Map<string, number>;
  private readonly inverse = new Map<number, string>();
  private readonly ranks = new Map<string, number>();
  private readonly added: { id: number; content: string }[];
  private readonly regex: RegExp;
  private readonly chars = byteAlphabet();
  private readonly byteOf = new Map(this.chars.map((c, b) => [c, b] as const));

  constructor(json: any) {
    if (json.model.type !== 'BPE') throw new Error('not BPE');
    this.vocab = new Map(Object.entries(json.model.vocab as Record<string, number>));
    for (const [token, id] of this.vocab) this.inverse.set(id, token);
    (json.model.merges as (string | [string, string])[]).forEach((m, rank) => {
      const [a, b] = typeof m === 'string' ? m.split(' ') : m;
      this.ranks.set(`${a} ${b}`, rank);
    });
    this.added = json.added_tokens ?? [];
    for (const t of this.added) this.inverse.set(t.id, t.content);
    const pre = json.pre_tokenizer;
    if (pre.type === 'ByteLevel' && pre.use_regex) this.regex = GPT2_REGEX;
    else if (pre.type === 'Sequence' && pre.pretokenizers[0].type === 'Split') this.regex = new RegExp(pre.pretokenizers[0].pattern.Regex, 'gu');
    else throw new Error(`unsupported pre_tokenizer ${JSON.stringify(pre)}`);
  }

  /**
   * Token ids of `text`. With `matchAddedTokens` (the library's default), the text of an added token
   * becomes that token; without it (`split_special_tokens=True`), it is ordinary text.
   */
  encode(text: string, { matchAddedTokens = false } = {}): number[] {
    if (!matchAddedTokens || this.added.length === 0) return this.encodeSegment(text);
    const ids: number[] = [];
    let rest = text;
    while (rest.length > 0) {
      let best: { at: number; t: { id: number; content: string } } | null = null;
      for (const t of this.added) {
        const at = rest.indexOf(t.content);
        if (at >= 0 && (best === null || at < best.at || (at === best.at && t.content.length > best.t.content.length))) best = { at, t };
      }
      if (best === null) {
        ids.push(...this.encodeSegment(rest));
        break;
      }
      ids.push(...this.encodeSegment(rest.slice(0, best.at)), best.t.id);
      rest = rest.slice(best.at + best.t.content.length);
    }
    return ids;
  }

  private encodeSegment(text: string): number[] {
    const ids: number[] = [];
    for (const chunk of text.match(new RegExp(this.regex)) ?? []) {
      let parts = utf8Generalised(chunk).map((b) => this.chars[b]);
      for (;;) {
        let bestRank = Infinity;
        let pair = '';
        for (let i = 0; i + 1 < parts.length; i++) {
          const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
          if (r !== undefined && r < bestRank) [bestRank, pair] = [r, `${parts[i]} ${parts[i + 1]}`];
        }
        if (bestRank === Infinity) break;
        const [a, b] = pair.split(' ');
        const merged: string[] = [];
        for (let i = 0; i < parts.length; i++) {
          if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) merged.push(a + b), i++;
          else merged.push(parts[i]);
        }
        parts = merged;
      }
      for (const p of parts) {
        const id = this.vocab.get(p);
        if (id === undefined) throw new Error(`no id for ${JSON.stringify(p)}`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** Text of `ids` as the ByteLevel decoder gives it: bytes decoded as UTF-8, invalid ones as U+FFFD. */
  decode(ids: number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.inverse.get(id)!;
      const special = this.added.find((t) => t.id === id);
      if (special) bytes.push(...new TextEncoder().encode(special.content));
      else for (const c of token) bytes.push(this.byteOf.get(c)!);
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  }
}
