/**
 * WikiText (raw) loader: `wiki.{train,valid,test}.raw`, plain or gzipped.
 *
 * Format (one paragraph per line, every token separated by one space):
 *   ` = Title = `            an article starts
 *   ` = = Section = = `      a section (level 2), ` = = = Sub = = = ` level 3, …
 *   ` Some text , with @-@ split tokens . `   a paragraph
 *   ` ` (a line holding only a space) separates blocks and is ignored.
 *
 * Detokenisation (see `detokenizeWikiText`) turns a tokenised line back into natural text:
 *  - `@-@`, `@,@`, `@.@` glue their neighbours: `1 @,@ 000` → `1,000`, `state @-@ of` → `state-of`.
 *  - no space before `, . ; : ! ? ) ] } %` and `...`, none after `( [ {` and the currency signs
 *    `$ £ € ¥`;
 *  - clitics: ` 's`, ` 't`, ` 're`, … (any token `'` + letter) and ` n't` attach to the previous word;
 *  - double quotes are paired left to right within a paragraph: an opening `"` loses the space
 *    after it, a closing one the space before it (`" lobster red "` → `"lobster red"`). An odd one
 *    out is treated as opening (a quotation continuing into the next paragraph).
 * Known limits, kept on purpose (simple beats clever here): a standalone `'` (plural possessive
 * `Linnaeus '` or a single-quoted phrase `' anti-lodgment '`) is left with its spaces, as are
 * dashes, slashes and `:` inside times.
 */
import { readCorpusLines } from './read-text.ts';

interface WikiSection {
  /** null for the lead section (the text between the title and the first heading). */
  heading: string | null;
  /** 1 for the lead, 2 for ` = = H = = `, 3 for ` = = = H = = = `, … */
  level: number;
  paragraphs: string[];
}

interface WikiArticle {
  title: string;
  /** sections[0] is the lead section (heading null, level 1), possibly with no paragraphs. */
  sections: WikiSection[];
}

interface WikiTextOptions {
  /** Detokenise titles, headings and paragraphs (default true). */
  detokenize?: boolean;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', '%', '...', "n't"]);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '$', '£', '€', '¥']);

/** Turns one tokenised WikiText line (paragraph or heading text) into natural text. */
export function detokenizeWikiText(line: string): string {
  const glued = line.trim().replace(/ ?@([-,.])@ ?/g, '$1');
  if (glued === '') return '';
  const tokens = glued.split(/ +/);
  let out = '';
  let spaceBeforeNext = false; // whether the token to come may be preceded by a space
  let quoteOpen = false;
  for (const tok of tokens) {
    let spaceBefore = spaceBeforeNext;
    let spaceAfter = true;
    if (tok === '"') {
      if (quoteOpen) spaceBefore = false; // closing
      else spaceAfter = false; // opening
      quoteOpen = !quoteOpen;
    } else {
      if (NO_SPACE_BEFORE.has(tok) || /^'\p{L}/u.test(tok)) spaceBefore = false;
      if (NO_SPACE_AFTER.has(tok)) spaceAfter = false;
    }
    if (out !== '' && spaceBefore) out += ' ';
    out += tok;
    spaceBeforeNext = spaceAfter;
  }
  return out;
}

const HEADING = /^(=(?: =)*) (.+) \1$/;

/** `{ level, text }` if the (untrimmed) line is a WikiText heading, else null. */
export function parseHeading(line: string): { level: number; text: string } | null {
  const m = HEADING.exec(line.trim());
  if (m === null) return null;
  const text = m[2].trim();
  if (text === '' || text.startsWith('=') || text.endsWith('=')) return null; // unbalanced markers
  return { level: (m[1].length + 1) / 2, text };
}

/** Parses WikiText lines (or a whole text) into articles. Text before the first title goes into an article titled "". */
function parseWikiText(input: string | readonly string[], options: WikiTextOptions = {}): WikiArticle[] {
  const detok = options.detokenize ?? true;
  const clean = (s: string) => (detok ? detokenizeWikiText(s) : s.trim());
  const lines = typeof input === 'string' ? input.split(/\r?\n/) : input;
  const articles: WikiArticle[] = [];
  let article: WikiArticle | null = null;
  let section: WikiSection | null = null;
  for (const line of lines) {
    if (line.trim() === '') continue;
    const h = parseHeading(line);
    if (h !== null && h.level === 1) {
      section = { heading: null, level: 1, paragraphs: [] };
      article = { title: clean(h.text), sections: [section] };
      articles.push(article);
      continue;
    }
    if (article === null || section === null) {
      section = { heading: null, level: 1, paragraphs: [] };
      article = { title: '', sections: [section] };
      articles.push(article);
    }
    if (h !== null) {
      section = { heading: clean(h.text), level: h.level, paragraphs: [] };
      article.sections.push(section);
      continue;
    }
    const p = clean(line);
    if (p !== '') section.paragraphs.push(p);
  }
  return articles;
}

/** Reads `wiki.*.raw` (or `.raw.gz`; gzip detected from the bytes) and parses it. */
export async function readWikiText(path: string, options: WikiTextOptions = {}): Promise<WikiArticle[]> {
  const { lines } = await readCorpusLines(path, 'WikiText-2 (raw) corpus');
  return parseWikiText(lines, options);
}

/**
 * One document per article: the title on the first line, then every heading and paragraph on a
 * line of its own (headings as plain lines, no `=` markers). Articles without any paragraph are
 * skipped.
 */
export function wikiTextToDocuments(articles: readonly WikiArticle[]): string[] {
  const docs: string[] = [];
  for (const a of articles) {
    if (!a.sections.some((s) => s.paragraphs.length > 0)) continue;
    const out: string[] = [];
    if (a.title !== '') out.push(a.title);
    for (const s of a.sections) {
      if (s.heading !== null) out.push(s.heading);
      out.push(...s.paragraphs);
    }
    docs.push(out.join('\n'));
  }
  return docs;
}

interface WikiTextStats {
  articles: number;
  sections: number;
  paragraphs: number;
  /** Characters (UTF-16 code units) of the documents made by `wikiTextToDocuments`. */
  characters: number;
}

export function wikiTextStats(articles: readonly WikiArticle[]): WikiTextStats {
  let sections = 0;
  let paragraphs = 0;
  for (const a of articles) {
    sections += a.sections.length;
    for (const s of a.sections) paragraphs += s.paragraphs.length;
  }
  const characters = wikiTextToDocuments(articles).reduce((n, d) => n + d.length, 0);
  return { articles: articles.length, sections, paragraphs, characters };
}
