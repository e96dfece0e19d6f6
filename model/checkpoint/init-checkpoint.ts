/**
 * A randomly initialised policy checkpoint: a byte-level BPE tokenizer with the preset's vocabulary
 * size trained on a text file, and a GPT of that preset at step 0. Used by `npm run init-model` and by
 * the server when no checkpoint exists yet.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../backend.ts';
import { countParams, gptConfig, type PresetName } from '../gpt/config.ts';
import { GPT } from '../gpt/gpt.ts';
import { saveModel } from './gpt-checkpoint.ts';
import { trainBpe, type Tokenizer } from '../tokenizer/index.ts';

/** The text the tokenizer learns from by default: a WikiText sample shipped with the model code. */
export const INIT_TEXT = fileURLToPath(new URL('../assets/init-text.txt', import.meta.url));

/** The text cannot be read, or is too small to learn the vocabulary. */
export class InitTextError extends Error {
  override readonly name = 'InitTextError';
}

interface InitCheckpointOptions {
  preset: PresetName;
  /** Output directory (written atomically). */
  out: string;
  /** Text file the tokenizer is trained on. */
  text: string;
  seed?: number;
  log?: (line: string) => void;
}

/**
 * BPE with exactly `vocabSize` ids. On a small text the default minimum pair frequency (2) can run out
 * of merges first; then pairs seen once are allowed too. Still short: the text is too small.
 */
function trainTokenizer(text: string, vocabSize: number, file: string, log: (line: string) => void): { tokenizer: Tokenizer; minFrequency: number } {
  for (const minFrequency of [2, 1]) {
    const tokenizer = trainBpe([text], { vocabSize, minFrequency });
    if (tokenizer.vocabSize === vocabSize) return { tokenizer, minFrequency };
    log(`[init-model] ${file} gives ${tokenizer.vocabSize} ids with minFrequency ${minFrequency}; need ${vocabSize}`);
  }
  throw new InitTextError(`--text: ${file} is too small to learn ${vocabSize} BPE ids; give a larger text file`);
}

/** Writes the checkpoint and returns its absolute directory. */
export async function initCheckpoint({ preset, out, text: textFile, seed, log = () => {} }: InitCheckpointOptions): Promise<string> {
  const config = gptConfig(preset, seed === undefined ? {} : { initSeed: seed });
  let text: string;
  try {
    text = await readFile(textFile, 'utf8');
  } catch (err) {
    throw new InitTextError(`--text: cannot read ${textFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  await initEngine();
  const t0 = performance.now();
  const { tokenizer, minFrequency } = trainTokenizer(text, config.vocabSize, textFile, log);
  log(`[init-model] BPE tokenizer: ${tokenizer.vocabSize} ids from ${textFile} (${text.length} chars) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  const model = new GPT(config);
  try {
    log(`[init-model] GPT preset ${preset}: ${countParams(config).toLocaleString('en-US')} parameters, initSeed ${config.initSeed}`);
    const dir = resolve(out);
    await saveModel(dir, {
      model,
      tokenizer,
      kind: 'policy',
      step: 0,
      extra: { note: 'randomly initialised', preset, tokenizer_text: textFile, bpe_min_frequency: minFrequency },
    });
    log(`[init-model] saved ${dir}`);
    return dir;
  } finally {
    model.dispose();
  }
}
