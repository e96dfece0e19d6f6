/**
 * Shared plumbing for the corpus loaders: locating a file (plain or gzipped), decoding it
 * (UTF-8, falling back to latin-1 line by line), and counting malformed lines.
 *
 * Encoding policy (used by every loader):
 * - The whole file is first decoded as UTF-8 with a *fatal* TextDecoder. If that succeeds the
 *   file is UTF-8 (this is the case for the copies in shared/data and for WikiText).
 * - Otherwise each line is decoded on its own: as UTF-8 if it is valid UTF-8, else as latin-1.
 *   Latin-1 is decoded as windows-1252 (what the WHATWG "latin1" label means): identical to
 *   ISO-8859-1 for every printable character (0xE9 -> "é"), and it turns the bytes 0x80-0x9F,
 *   which are invisible C1 control codes in strict ISO-8859-1, into the cp1252 punctuation that
 *   such files actually contain (0x92 -> "’", 0x97 -> "—"). The original Cornell files are
 *   latin-1 with at least one such cp1252 byte.
 *   A latin-1 file is therefore read correctly, and a UTF-8 file with a few corrupt lines keeps
 *   its good lines as UTF-8. Lines decoded as latin-1 are never silent: they are counted
 *   (`latin1Lines`, first line numbers) in the result.
 * - Gzip is detected from the magic bytes 0x1f 0x8b, not from the file name.
 */
import { constants as fsConstants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

const gunzipAsync = promisify(gunzip);

/** Where users are sent when a corpus file is missing. */
const CORPORA_DOCS_HINT = 'see docs/training.md, section Corpora';

/** A corpus file that is not there. `path` is the path that was expected. */
export class CorpusFileNotFoundError extends Error {
  readonly path: string;
  readonly corpus: string;
  constructor(path: string, corpus: string) {
    super(
      `${corpus} file not found: ${path} (also looked for ${path.endsWith('.gz') ? path.slice(0, -3) : `${path}.gz`}). ` +
        `Download the ${corpus} (${CORPORA_DOCS_HINT}) and pass --corpus-dir or CORPUS_DIR.`,
    );
    this.name = 'CorpusFileNotFoundError';
    this.path = path;
    this.corpus = corpus;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * `path` if it exists, else `path.gz`, else (for a `.gz` path) the path without `.gz`; null if
 * none of them exists.
 */
async function findCorpusFile(path: string): Promise<string | null> {
  const candidates = path.endsWith('.gz') ? [path, path.slice(0, -3)] : [path, `${path}.gz`];
  for (const c of candidates) if (await exists(c)) return c;
  return null;
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

interface CorpusBytes {
  /** The file actually read (may be `path.gz`). */
  path: string;
  bytes: Uint8Array;
  gzipped: boolean;
}

/** Reads a corpus file, plain or gzipped (magic bytes). Missing → CorpusFileNotFoundError. */
async function readCorpusBytes(path: string, corpus: string): Promise<CorpusBytes> {
  const found = await findCorpusFile(path);
  if (found === null) throw new CorpusFileNotFoundError(path, corpus);
  const raw = await readFile(found);
  if (!isGzip(raw)) return { path: found, bytes: raw, gzipped: false };
  try {
    return { path: found, bytes: await gunzipAsync(raw), gzipped: true };
  } catch (err) {
    throw new Error(`${corpus}: ${found} starts like a gzip file but cannot be decompressed: ${(err as Error).message}`);
  }
}

export type DetectedEncoding = 'utf-8' | 'latin-1' | 'mixed';

interface DecodedText {
  /** The lines, without their `\n` / `\r\n`; a final empty line after the last `\n` is dropped. */
  lines: string[];
  /** utf-8: all lines valid UTF-8; latin-1: some lines latin-1, none with non-ASCII UTF-8; mixed: both. */
  encoding: DetectedEncoding;
  /** Lines that were not valid UTF-8 and were decoded as latin-1 (windows-1252). */
  latin1Lines: number;
  /** First (at most 5) 1-based line numbers decoded as latin-1. */
  firstLatin1Lines: number[];
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

// cp1252 characters for the bytes 0x80-0x9F (0 = undefined in cp1252: the byte keeps its latin-1 code
// point, as in the WHATWG decoder). Done by hand because Node's TextDecoder('windows-1252') decodes
// these bytes as strict latin-1 (C1 controls) in the versions we run on.
const CP1252_HIGH = [
  0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
  0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
];

/** Decodes latin-1 bytes, with the cp1252 characters for 0x80-0x9F (see the file header). */
function decodeLatin1(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4096) {
    const chunk = bytes.subarray(i, i + 4096);
    const codes = new Array<number>(chunk.length);
    for (let j = 0; j < chunk.length; j++) {
      const b = chunk[j];
      codes[j] = b >= 0x80 && b <= 0x9f && CP1252_HIGH[b - 0x80] !== 0 ? CP1252_HIGH[b - 0x80] : b;
    }
    out += String.fromCharCode(...codes);
  }
  return out;
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.endsWith('\r')) lines[i] = l.slice(0, -1);
  }
  return lines;
}

function hasNonAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return true;
  return false;
}

/** Decodes bytes into lines with the policy described at the top of this file. */
export function decodeLines(bytes: Uint8Array): DecodedText {
  try {
    return { lines: splitLines(utf8Fatal.decode(bytes)), encoding: 'utf-8', latin1Lines: 0, firstLatin1Lines: [] };
  } catch {
    // Not valid UTF-8 as a whole: decide line by line.
  }
  const lines: string[] = [];
  let latin1Lines = 0;
  let utf8NonAscii = 0;
  const firstLatin1Lines: number[] = [];
  let start = 0;
  // Skip a UTF-8 BOM (the whole-file decoder would have done it).
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    const last = end === -1;
    if (last) end = bytes.length;
    if (last && start === end) break; // nothing after the final newline
    let lineBytes = bytes.subarray(start, end);
    if (lineBytes.length > 0 && lineBytes[lineBytes.length - 1] === 0x0d) lineBytes = lineBytes.subarray(0, -1);
    let line: string;
    try {
      line = utf8Fatal.decode(lineBytes);
      if (hasNonAscii(lineBytes)) utf8NonAscii++;
    } catch {
      line = decodeLatin1(lineBytes);
      latin1Lines++;
      if (firstLatin1Lines.length < 5) firstLatin1Lines.push(lines.length + 1);
    }
    lines.push(line);
    if (last) break;
    start = end + 1;
  }
  return { lines, encoding: utf8NonAscii > 0 ? 'mixed' : 'latin-1', latin1Lines, firstLatin1Lines };
}

/** Reads and decodes a corpus file. */
export async function readCorpusLines(path: string, corpus: string): Promise<DecodedText & { path: string; gzipped: boolean }> {
  const { path: found, bytes, gzipped } = await readCorpusBytes(path, corpus);
  return { ...decodeLines(bytes), path: found, gzipped };
}

/** What a loader reports about the lines it had to skip. */
export interface MalformedSummary {
  /** The file (as read) the summary is about. */
  file: string;
  /** Number of skipped lines (or records). */
  malformed: number;
  /** 1-based line numbers of the first (at most 5) skipped lines. */
  firstLines: number[];
  /** Count per reason, e.g. { 'wrong-field-count': 2, 'unknown-line-id': 1 }. */
  reasons: Record<string, number>;
}

export class MalformedCounter {
  private count = 0;
  private readonly first: number[] = [];
  private readonly reasons: Record<string, number> = {};
  constructor(private readonly file: string) {}

  add(lineNumber: number, reason: string): void {
    this.count++;
    if (this.first.length < 5) this.first.push(lineNumber);
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
  }

  summary(): MalformedSummary {
    return { file: this.file, malformed: this.count, firstLines: [...this.first], reasons: { ...this.reasons } };
  }
}

/** One log line, e.g. "movie_lines.txt.gz: 2 malformed lines skipped (wrong-field-count 2); first at lines 4, 9". */
export function formatMalformedSummary(s: MalformedSummary): string {
  const name = basename(s.file);
  if (s.malformed === 0) return `${name}: no malformed lines`;
  const reasons = Object.entries(s.reasons)
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  return `${name}: ${s.malformed} malformed line${s.malformed === 1 ? '' : 's'} skipped (${reasons}); first at line${
    s.firstLines.length === 1 ? '' : 's'
  } ${s.firstLines.join(', ')}`;
}

/** One log line about the encoding, or null when the file was plain UTF-8. */
export function formatEncodingNote(file: string, d: Pick<DecodedText, 'encoding' | 'latin1Lines' | 'firstLatin1Lines'>): string | null {
  if (d.latin1Lines === 0) return null;
  return `${basename(file)}: ${d.latin1Lines} line${d.latin1Lines === 1 ? '' : 's'} not valid UTF-8, decoded as latin-1 (file looks ${
    d.encoding
  }); first at lines ${d.firstLatin1Lines.join(', ')}`;
}
