/**
 * The text a language model is pretrained on, and the WikiText text held out to measure it.
 *
 * WikiText-2 train is used when present. Where only valid and test exist (the corpora this project
 * ships with), valid stands in for train and every 10th valid article (0, 10, 20, ...) is carved
 * out as the held-out slice: recipe decisions are measured there, and WikiText-2 test stays
 * untouched for the final report (`npm run eval`).
 *
 * Optional extra sources: the Brown corpus, and the Cornell training-split conversations as plain
 * text (one document per conversation, one turn per line, no chat template), so that pretraining
 * sees the dialogue domain too. Only training-split movies are used: valid and test movies stay
 * held out for SFT and evaluation.
 */
import { brownToDocuments, readBrown } from './brown.ts';
import { splitByMovie, toTurns } from './cornell-dialogues.ts';
import { loadCornell } from './cornell.ts';
import { cornellPaths, wikiTextPath } from './corpus-dir.ts';
import { readWikiText, wikiTextToDocuments } from './wikitext.ts';

/** Every k-th valid article is held out when WikiText-2 train is absent. */
const WIKI_HELD_OUT_EVERY = 10;

interface PretrainSources {
  brown: boolean;
  cornell: boolean;
}

interface WikiSplitText {
  train: string[];
  heldOut: string[];
  /** Where the held-out text comes from, for logs and reports. */
  heldOutName: string;
}

/** WikiText documents for training and the held-out slice (see the file header). */
export async function wikiTrainAndHeldOut(corpusDir: string): Promise<WikiSplitText> {
  let trainPath: string | null = null;
  try {
    trainPath = wikiTextPath(corpusDir, 'train');
  } catch {
    trainPath = null;
  }
  const valid = wikiTextToDocuments(await readWikiText(wikiTextPath(corpusDir, 'valid')));
  if (trainPath !== null) {
    return { train: wikiTextToDocuments(await readWikiText(trainPath)), heldOut: valid, heldOutName: 'WikiText-2 valid' };
  }
  if (valid.length < 2) throw new Error(`WikiText-2 valid holds ${valid.length} article(s); at least 2 are needed to hold one out`);
  return {
    train: valid.filter((_, i) => i % WIKI_HELD_OUT_EVERY !== 0),
    heldOut: valid.filter((_, i) => i % WIKI_HELD_OUT_EVERY === 0),
    heldOutName: `WikiText-2 valid, every ${WIKI_HELD_OUT_EVERY}th article (held out of training)`,
  };
}

/** Cornell training-split conversations as plain text, one turn per line. */
export async function cornellTrainText(corpusDir: string, log?: (line: string) => void): Promise<string[]> {
  const { conversations } = await loadCornell(cornellPaths(corpusDir), { log });
  return splitByMovie(conversations).train.map((c) => toTurns(c).map((t) => t.text).join('\n'));
}

/** The pretraining documents: WikiText's training part, plus Brown and Cornell text when asked. */
export async function pretrainDocuments(corpusDir: string, sources: PretrainSources, log: (line: string) => void): Promise<string[]> {
  const wiki = await wikiTrainAndHeldOut(corpusDir);
  log(`WikiText: ${wiki.train.length} training articles; held out: ${wiki.heldOutName} (${wiki.heldOut.length} articles)`);
  const docs = [...wiki.train];
  if (sources.brown) docs.push(...brownToDocuments((await readBrown()).documents));
  if (sources.cornell) {
    const convs = await cornellTrainText(corpusDir);
    log(`Cornell: ${convs.length} training-split conversations as plain text`);
    docs.push(...convs);
  }
  return docs;
}

export async function wikiTestDocuments(corpusDir: string): Promise<string[]> {
  return wikiTextToDocuments(await readWikiText(wikiTextPath(corpusDir, 'test')));
}
