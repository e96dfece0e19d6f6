/**
 * WTF-8 encoder and decoder, written by hand on purpose.
 *
 * Why not TextEncoder/TextDecoder: a JS string may hold lone UTF-16 surrogates (e.g. a string cut
 * in the middle of an emoji). TextEncoder silently turns them into U+FFFD, which would make the
 * tokenizer lossy. WTF-8 ("generalized UTF-8") encodes a lone surrogate as the 3-byte sequence
 * its code unit value would have (ED A0..BF xx), while a proper surrogate pair is encoded as the
 * usual 4-byte sequence of its code point. For strings without lone surrogates the bytes are
 * exactly UTF-8, and `decodeWtf8(encodeWtf8(s)) === s` holds for every JS string.
 *
 * The decoder never throws. It follows the WHATWG UTF-8 decoder (so for valid UTF-8 it agrees
 * with TextDecoder, and invalid bytes become U+FFFD with the same "maximal subpart" granularity),
 * except that ED may be followed by A0..BF, which decodes to a lone surrogate code unit.
 */

const REPLACEMENT = 0xfffd;

export function encodeWtf8(s: string): Uint8Array {
  // Each UTF-16 code unit needs at most 3 bytes (a pair: 2 units -> 4 bytes).
  const out = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          out[n++] = 0xf0 | (cp >> 18);
          out[n++] = 0x80 | ((cp >> 12) & 0x3f);
          out[n++] = 0x80 | ((cp >> 6) & 0x3f);
          out[n++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
      }
      // BMP character, or a lone surrogate written in its generalized 3-byte form.
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return out.slice(0, n);
}

/** Decodes WTF-8 bytes to a string; invalid bytes become U+FFFD. Never throws. */
export function decodeWtf8(bytes: Uint8Array): string {
  return decode(bytes, false).text;
}

interface Wtf8PrefixResult {
  /** Text of every complete (or definitely invalid) sequence. */
  text: string;
  /**
   * Trailing bytes that start a valid but unfinished sequence: they may still become a
   * character once more bytes arrive, so they are not decoded yet (at most 3 bytes).
   */
  incompleteTail: Uint8Array;
}

/**
 * Decodes all but an unfinished sequence at the end, for streaming. Because such a tail always
 * starts at a lead byte (where a decoder is between characters), decoding the text in pieces
 * this way and then the final tail with `decodeWtf8` gives the same string as decoding it whole.
 */
export function decodeWtf8Prefix(bytes: Uint8Array): Wtf8PrefixResult {
  const { text, pendingFrom } = decode(bytes, true);
  return { text, incompleteTail: bytes.slice(pendingFrom) };
}

function decode(bytes: Uint8Array, stream: boolean): { text: string; pendingFrom: number } {
  // Every byte yields at most one UTF-16 code unit, except 4-byte sequences (4 bytes -> 2 units).
  const units = new Uint16Array(bytes.length);
  let u = 0;
  let needed = 0; // continuation bytes still expected
  let seen = 0;
  let codePoint = 0;
  let lower = 0x80; // allowed range of the next continuation byte
  let upper = 0xbf;
  let sequenceStart = 0;

  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (needed === 0) {
      sequenceStart = i;
      if (byte <= 0x7f) {
        units[u++] = byte;
      } else if (byte >= 0xc2 && byte <= 0xdf) {
        needed = 1;
        codePoint = byte & 0x1f;
      } else if (byte >= 0xe0 && byte <= 0xef) {
        if (byte === 0xe0) lower = 0xa0; // no overlong 3-byte forms
        // (UTF-8 would set upper = 0x9f after ED; WTF-8 allows ED A0..BF = surrogates.)
        needed = 2;
        codePoint = byte & 0x0f;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        if (byte === 0xf0) lower = 0x90; // no overlong 4-byte forms
        if (byte === 0xf4) upper = 0x8f; // nothing above U+10FFFF
        needed = 3;
        codePoint = byte & 0x07;
      } else {
        units[u++] = REPLACEMENT;
      }
      continue;
    }
    if (byte < lower || byte > upper) {
      // The sequence so far is a maximal invalid subpart: one U+FFFD, then re-read this byte.
      needed = seen = codePoint = 0;
      lower = 0x80;
      upper = 0xbf;
      units[u++] = REPLACEMENT;
      i--;
      continue;
    }
    lower = 0x80;
    upper = 0xbf;
    codePoint = (codePoint << 6) | (byte & 0x3f);
    if (++seen === needed) {
      if (codePoint >= 0x10000) {
        const v = codePoint - 0x10000;
        units[u++] = 0xd800 + (v >> 10);
        units[u++] = 0xdc00 + (v & 0x3ff);
      } else {
        units[u++] = codePoint;
      }
      needed = seen = codePoint = 0;
    }
  }

  let pendingFrom = bytes.length;
  if (needed !== 0) {
    if (stream) pendingFrom = sequenceStart;
    else units[u++] = REPLACEMENT;
  }
  return { text: unitsToString(units, u), pendingFrom };
}

function unitsToString(units: Uint16Array, length: number): string {
  // fromCharCode keeps lone surrogates as they are (a UTF-16 TextDecoder would not).
  const CHUNK = 8192; // stay far below the engine's argument-count limit
  let s = '';
  for (let start = 0; start < length; start += CHUNK) {
    const part = units.subarray(start, Math.min(length, start + CHUNK));
    s += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return s;
}
