/**
 * `tsx trainer/online/cut-dialogue-sets.ts [--corpus-dir DIR]` writes trainer/online/data/dialogues.json:
 * short one-exchange dialogues cut from the Cornell Movie-Dialogs corpus — `train` from the training
 * split (PPO prompts mixed with users' prompts, and bootstrap reward pairs) and `heldOut` from the
 * test split (the gate's fixed prompts and perplexity dialogues, and held-out bootstrap pairs). The
 * online trainer ships them so a server needs no corpus at run time.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { cornellPaths, loadCornellDialogues, resolveCorpusDir } from '../data/index.ts';
import { permutation } from '../batching/batches.ts';
import type { CornellDialogue } from '../data/cornell.ts';

const OUT = new URL('./data/dialogues.json', import.meta.url);
const MAX_CHARS = 100;
const SIZES = { train: 600, heldOut: 64 };

function exchanges(dialogues: CornellDialogue[], n: number, seed: number) {
  const short = dialogues
    .filter((d) => d.offset === 0)
    .map((d) => d.messages.slice(0, 2))
    .filter((m) => m.every((t) => t.content.length >= 2 && t.content.length <= MAX_CHARS));
  return Array.from(permutation(short.length, seed).slice(0, n), (i) => short[i]);
}

const { values } = parseArgs({ options: { 'corpus-dir': { type: 'string', default: '' } } });
const { dialogues } = await loadCornellDialogues(cornellPaths(resolveCorpusDir({ flag: values['corpus-dir'] || undefined })));
const sets = {
  source: 'Cornell Movie-Dialogs corpus (first exchange of dialogues, split by movie as the SFT stage splits them)',
  train: exchanges(dialogues.train, SIZES.train, 1),
  heldOut: exchanges(dialogues.test, SIZES.heldOut, 2),
};
await writeFile(OUT, JSON.stringify(sets, null, 0) + '\n');
process.stderr.write(`wrote ${sets.train.length} train and ${sets.heldOut.length} held-out dialogues to ${OUT.pathname}\n`);
