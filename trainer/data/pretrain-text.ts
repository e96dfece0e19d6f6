/** The text the pretraining stage learns from and is evaluated on. */
import { brownToDocuments, readBrown } from './brown.ts';
import { wikiTextPath } from './corpus-dir.ts';
import { readWikiText, wikiTextToDocuments } from './wikitext.ts';

/**
 * Pretraining text: WikiText-2 train when present (this repository's machines only have valid and
 * test, so valid stands in and test stays held out), plus the Brown corpus when asked.
 */
export async function pretrainDocuments(corpusDir: string, brown: boolean, log: (line: string) => void): Promise<string[]> {
  let trainPath: string;
  try {
    trainPath = wikiTextPath(corpusDir, 'train');
  } catch {
    trainPath = wikiTextPath(corpusDir, 'valid');
    log(`WikiText train split not found; training on ${trainPath} (the test split stays held out)`);
  }
  const docs = wikiTextToDocuments(await readWikiText(trainPath));
  if (brown) docs.push(...brownToDocuments((await readBrown()).documents));
  return docs;
}

export async function wikiTestDocuments(corpusDir: string): Promise<string[]> {
  return wikiTextToDocuments(await readWikiText(wikiTextPath(corpusDir, 'test')));
}
