/**
 * `npm run init-model -- --preset tiny [--out DIR] [--text FILE] [--seed N]`
 *
 * Trains a byte-level BPE tokenizer with the preset's vocabulary size on a text file, builds a randomly
 * initialised GPT of that preset and saves both as a policy checkpoint (step 0). Prints the checkpoint
 * path on stdout; logs go to stderr. Exit 2 for bad usage, 1 for other failures.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initEngine } from '../backend.ts';
import { countParams, gptConfig, PRESET_NAMES, type PresetName } from '../gpt/config.ts';
import { GPT } from '../gpt/gpt.ts';
import { saveModel } from '../model-checkpoint.ts';
import { trainBpe, type Tokenizer } from '../tokenizer/index.ts';
import { initModelDir } from './default-checkpoint.ts';

export const DEFAULT_TEXT = 'tests/fixtures/wiki-sample.txt';

const USAGE = 'usage: npm run init-model -- --preset tiny|small|base [--out DIR] [--text FILE] [--seed N]';

class UsageError extends Error {}

const log = (line: string): void => void process.stderr.write(line + '\n');

interface Args {
  preset: PresetName;
  out: string;
  text: string;
  seed: number | undefined;
}

function parse(argv: string[]): Args | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        preset: { type: 'string' },
        out: { type: 'string' },
        text: { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\s*\n\s*/g, ' '));
  }
  if (values.help) return 'help';
  const preset = values.preset ?? 'tiny';
  if (!(PRESET_NAMES as string[]).includes(preset)) {
    throw new UsageError(`--preset: unknown preset '${preset}'; expected one of ${PRESET_NAMES.join(', ')}`);
  }
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || !Number.isSafeInteger(Number(values.seed))) {
      throw new UsageError(`--seed: expected a non-negative integer, got '${values.seed}'`);
    }
    seed = Number(values.seed);
  }
  return {
    preset: preset as PresetName,
    out: values.out ?? initModelDir(preset),
    text: values.text ?? DEFAULT_TEXT,
    seed,
  };
}

/**
 * BPE with exactly `vocabSize` ids. On a small text the default minimum pair frequency (2) can run out
 * of merges first; then pairs seen once are allowed too. Still short: the text is too small.
 */
function trainTokenizer(text: string, vocabSize: number, file: string): { tokenizer: Tokenizer; minFrequency: number } {
  for (const minFrequency of [2, 1]) {
    const tokenizer = trainBpe([text], { vocabSize, minFrequency });
    if (tokenizer.vocabSize === vocabSize) return { tokenizer, minFrequency };
    log(`[init-model] ${file} gives ${tokenizer.vocabSize} ids with minFrequency ${minFrequency}; need ${vocabSize}`);
  }
  throw new UsageError(`--text: ${file} is too small to learn ${vocabSize} BPE ids; give a larger text file`);
}

async function main(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const config = gptConfig(args.preset, args.seed === undefined ? {} : { initSeed: args.seed });
  let text: string;
  try {
    text = await readFile(args.text, 'utf8');
  } catch (err) {
    throw new UsageError(`--text: cannot read ${args.text}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  await initEngine();
  const t0 = performance.now();
  const { tokenizer, minFrequency } = trainTokenizer(text, config.vocabSize, args.text);
  log(`[init-model] BPE tokenizer: ${tokenizer.vocabSize} ids from ${args.text} (${text.length} chars) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  const model = new GPT(config);
  try {
    log(`[init-model] GPT preset ${args.preset}: ${countParams(config).toLocaleString('en-US')} parameters, initSeed ${config.initSeed}`);
    const out = resolve(args.out);
    await saveModel(out, {
      model,
      tokenizer,
      kind: 'policy',
      step: 0,
      extra: { note: 'randomly initialised', preset: args.preset, tokenizer_text: args.text, bpe_min_frequency: minFrequency },
    });
    log(`[init-model] saved ${out}`);
    process.stdout.write(out + '\n');
  } finally {
    model.dispose();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`init-model: ${message.split('\n')[0]}${err instanceof UsageError ? ' (see --help)' : ''}\n`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
