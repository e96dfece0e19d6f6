/**
 * Cornell Movie-Dialogs loader: `movie_lines.txt` + `movie_conversations.txt` (plain or gzipped,
 * latin-1 or UTF-8; see read-text.ts for the encoding and gzip detection).
 *
 * Formats (fields separated by " +++$+++ "):
 *   movie_lines.txt          lineID, characterID, movieID, character name, text
 *                            `L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ They do not!`
 *   movie_conversations.txt  characterID 1, characterID 2, movieID, lineIDs (Python list literal, spoken order)
 *                            `u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L194', 'L195', 'L196', 'L197']`
 * The lines file is NOT in conversation order: utterances are looked up by lineID.
 *
 * Malformed records are counted and skipped (see `CornellLoadSummary`), never fatal:
 *   lines:          wrong-field-count (< 5 fields), bad-id (empty/space in an id), duplicate-line-id,
 *                   blank-line
 *   conversations:  wrong-field-count (≠ 4 fields), bad-list-literal, empty-line-list,
 *                   unknown-line-id (the whole conversation is skipped), movie-mismatch (a line of
 *                   another movie), blank-line
 * A text field containing the separator is kept whole (text is the last field). A line whose text
 * is empty is valid; it is dropped when conversations are built and counted in `emptyUtterances`.
 *
 * Utterance text normalisation (`normalizeUtterance`): the markup tags `<u> <i> <b>` (any case)
 * are removed, whitespace runs become one space, the ends are trimmed, and U+FFFD between a letter
 * and a clitic (`I\uFFFDm`, `don\uFFFDt`, `that\uFFFDs` — a cp1252 ’ lost upstream) becomes `'`.
 * Other U+FFFD characters are kept and counted (`replacementChars`).
 *
 * Conversations become training dialogues, split by movie, in cornell-dialogues.ts.
 */
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { type DetectedEncoding, MalformedCounter, type MalformedSummary, formatEncodingNote, formatMalformedSummary, readCorpusLines } from './read-text.ts';

const CORNELL_SEPARATOR = ' +++$+++ ';
const CORPUS_NAME = 'Cornell Movie-Dialogs Corpus';

interface CornellLine {
  lineId: string;
  characterId: string;
  movieId: string;
  characterName: string;
  /** Raw text as in the file (not normalised). */
  text: string;
  /** 1-based line number in movie_lines.txt. */
  lineNumber: number;
}

interface CornellUtterance {
  lineId: string;
  characterId: string;
  characterName: string;
  /** Normalised text, never empty. */
  text: string;
}

export interface CornellConversation {
  movieId: string;
  /** The first lineID of the conversation as listed in the file (stable across file orderings). */
  conversationId: string;
  /** 0-based index of the record in movie_conversations.txt (counting every record, kept or not). */
  index: number;
  characterIds: [string, string];
  /** Non-empty utterances in spoken order. */
  utterances: CornellUtterance[];
}

export type Split = 'train' | 'valid' | 'test';
export const SPLITS: readonly Split[] = ['train', 'valid', 'test'];

export interface CornellDialogue {
  movieId: string;
  conversationId: string;
  /** 0: the first speaker is the user; 1: the first turn is dropped and the second speaker is the user. */
  offset: 0 | 1;
  /** characterIDs of the user and the assistant. */
  userCharacterId: string;
  assistantCharacterId: string;
  /** Alternating user/assistant, starting with user and ending with assistant. */
  messages: ChatMessage[];
}

interface FileReport extends MalformedSummary {
  /** Records kept. */
  records: number;
  gzipped: boolean;
  encoding: DetectedEncoding;
  latin1Lines: number;
  firstLatin1Lines: number[];
}

export interface CornellLoadSummary {
  lines: FileReport;
  conversations: FileReport;
  /** Utterances dropped because their text was empty after normalisation. */
  emptyUtterances: number;
  /** Conversations skipped because fewer than 2 non-empty utterances were left. */
  tooShortConversations: number;
  /** Utterances whose character is neither of the conversation's two characters (kept). */
  speakerMismatches: number;
  /** U+FFFD characters left in the kept utterances. */
  replacementChars: number;
  movies: number;
  utterances: number;
}

interface CornellCorpus {
  conversations: CornellConversation[];
  summary: CornellLoadSummary;
}

export interface CornellPaths {
  /** movie_lines.txt (a `.gz` next to it is found too). */
  lines: string;
  /** movie_conversations.txt (a `.gz` next to it is found too). */
  conversations: string;
}

// ---------- parsing ----------

function splitFields(line: string, expected: number): string[] {
  // Some copies strip trailing whitespace, which turns a final " +++$+++ " (empty text) into " +++$+++".
  const l = line.endsWith(' +++$+++') ? `${line} ` : line;
  const parts = l.split(CORNELL_SEPARATOR);
  if (parts.length <= expected) return parts;
  // The last field is free text: keep a separator inside it.
  return [...parts.slice(0, expected - 1), parts.slice(expected - 1).join(CORNELL_SEPARATOR)];
}

const ID = /^\S+$/;

/** Parses movie_lines.txt content. `file` is only used in the summary. */
export function parseCornellLines(lines: readonly string[], file = 'movie_lines.txt'): { lines: Map<string, CornellLine>; summary: MalformedSummary } {
  const bad = new MalformedCounter(file);
  const out = new Map<string, CornellLine>();
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i];
    if (raw.trim() === '') {
      bad.add(n, 'blank-line');
      continue;
    }
    const f = splitFields(raw, 5);
    if (f.length !== 5) {
      bad.add(n, 'wrong-field-count');
      continue;
    }
    const lineId = f[0].trim();
    const characterId = f[1].trim();
    const movieId = f[2].trim();
    const characterName = f[3].trim();
    if (!ID.test(lineId) || !ID.test(characterId) || !ID.test(movieId)) {
      bad.add(n, 'bad-id');
      continue;
    }
    if (out.has(lineId)) {
      bad.add(n, 'duplicate-line-id');
      continue;
    }
    out.set(lineId, { lineId, characterId, movieId, characterName, text: f[4], lineNumber: n });
  }
  return { lines: out, summary: bad.summary() };
}

/** Parses a Python list literal of strings like `['L194', 'L195']`; null if it is not one. */
export function parseLineIdList(literal: string): string[] | null {
  const s = literal.trim();
  if (!s.startsWith('[') || !s.endsWith(']')) return null;
  const inner = s.slice(1, -1).trim();
  if (inner === '') return [];
  const items = inner.split(',').map((x) => x.trim());
  if (items[items.length - 1] === '') items.pop(); // trailing comma, valid Python
  const ids: string[] = [];
  for (const item of items) {
    const m = /^(['"])(\S+)\1$/.exec(item);
    if (m === null || m[2].includes("'") || m[2].includes('"')) return null;
    ids.push(m[2]);
  }
  return ids;
}

const TAGS = /<\/?[uib]>/gi;
const FFFD_CLITIC = /(\p{L})\uFFFD(s|t|m|d|ll|re|ve)\b/gu;

/** Normalises an utterance's text (see the file header). */
export function normalizeUtterance(text: string): string {
  let t = text;
  if (t.includes('<')) t = t.replace(TAGS, '');
  if (t.includes('\uFFFD')) t = t.replace(FFFD_CLITIC, "$1'$2");
  return t.replace(/\s+/g, ' ').trim();
}

function countReplacementChars(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\uFFFD'); i !== -1; i = text.indexOf('\uFFFD', i + 1)) n++;
  return n;
}

/**
 * Builds conversations from parsed lines and the lines of movie_conversations.txt.
 * Returns the conversations plus the malformed summary of the conversations file and counters.
 */
function parseCornellConversations(
  convLines: readonly string[],
  lines: ReadonlyMap<string, CornellLine>,
  file = 'movie_conversations.txt',
): {
  conversations: CornellConversation[];
  summary: MalformedSummary;
  emptyUtterances: number;
  tooShortConversations: number;
  speakerMismatches: number;
  replacementChars: number;
} {
  const bad = new MalformedCounter(file);
  const conversations: CornellConversation[] = [];
  let emptyUtterances = 0;
  let tooShortConversations = 0;
  let speakerMismatches = 0;
  let replacementChars = 0;
  for (let i = 0; i < convLines.length; i++) {
    const n = i + 1;
    const raw = convLines[i];
    if (raw.trim() === '') {
      bad.add(n, 'blank-line');
      continue;
    }
    const f = raw.split(CORNELL_SEPARATOR);
    if (f.length !== 4) {
      bad.add(n, 'wrong-field-count');
      continue;
    }
    const c1 = f[0].trim();
    const c2 = f[1].trim();
    const movieId = f[2].trim();
    if (!ID.test(c1) || !ID.test(c2) || !ID.test(movieId)) {
      bad.add(n, 'bad-id');
      continue;
    }
    const ids = parseLineIdList(f[3]);
    if (ids === null) {
      bad.add(n, 'bad-list-literal');
      continue;
    }
    if (ids.length === 0) {
      bad.add(n, 'empty-line-list');
      continue;
    }
    const found: CornellLine[] = [];
    let problem: string | null = null;
    for (const id of ids) {
      const l = lines.get(id);
      if (l === undefined) {
        problem = 'unknown-line-id';
        break;
      }
      if (l.movieId !== movieId) {
        problem = 'movie-mismatch';
        break;
      }
      found.push(l);
    }
    if (problem !== null) {
      bad.add(n, problem);
      continue;
    }
    const utterances: CornellUtterance[] = [];
    for (const l of found) {
      const text = normalizeUtterance(l.text);
      if (text === '') {
        emptyUtterances++;
        continue;
      }
      if (l.characterId !== c1 && l.characterId !== c2) speakerMismatches++;
      replacementChars += countReplacementChars(text);
      utterances.push({ lineId: l.lineId, characterId: l.characterId, characterName: l.characterName, text });
    }
    if (utterances.length < 2) {
      tooShortConversations++;
      continue;
    }
    conversations.push({ movieId, conversationId: ids[0], index: i, characterIds: [c1, c2], utterances });
  }
  return { conversations, summary: bad.summary(), emptyUtterances, tooShortConversations, speakerMismatches, replacementChars };
}

/** Reads both files (plain or gzipped, UTF-8 or latin-1) and builds the conversations. */
export async function loadCornell(paths: CornellPaths, options: { log?: (message: string) => void } = {}): Promise<CornellCorpus> {
  const lf = await readCorpusLines(paths.lines, CORPUS_NAME);
  const cf = await readCorpusLines(paths.conversations, CORPUS_NAME);
  const pl = parseCornellLines(lf.lines, lf.path);
  const pc = parseCornellConversations(cf.lines, pl.lines, cf.path);
  const report = (
    d: typeof lf,
    s: MalformedSummary,
    records: number,
  ): FileReport => ({
    ...s,
    records,
    gzipped: d.gzipped,
    encoding: d.encoding,
    latin1Lines: d.latin1Lines,
    firstLatin1Lines: d.firstLatin1Lines,
  });
  const summary: CornellLoadSummary = {
    lines: report(lf, pl.summary, pl.lines.size),
    conversations: report(cf, pc.summary, pc.conversations.length),
    emptyUtterances: pc.emptyUtterances,
    tooShortConversations: pc.tooShortConversations,
    speakerMismatches: pc.speakerMismatches,
    replacementChars: pc.replacementChars,
    movies: new Set(pc.conversations.map((c) => c.movieId)).size,
    utterances: pc.conversations.reduce((s, c) => s + c.utterances.length, 0),
  };
  if (options.log !== undefined) for (const line of formatCornellSummary(summary)) options.log(line);
  return { conversations: pc.conversations, summary };
}

/** Log lines for a load summary (malformed lines, encoding fallbacks, dropped utterances). */
export function formatCornellSummary(s: CornellLoadSummary): string[] {
  const out = [
    `cornell: ${s.conversations.records} conversations, ${s.utterances} utterances, ${s.movies} movies`,
    formatMalformedSummary(s.lines),
    formatMalformedSummary(s.conversations),
  ];
  for (const f of [s.lines, s.conversations]) {
    const note = formatEncodingNote(f.file, f);
    if (note !== null) out.push(note);
  }
  if (s.emptyUtterances > 0) out.push(`cornell: ${s.emptyUtterances} empty utterances dropped`);
  if (s.tooShortConversations > 0) out.push(`cornell: ${s.tooShortConversations} conversations with fewer than 2 non-empty utterances dropped`);
  return out;
}
