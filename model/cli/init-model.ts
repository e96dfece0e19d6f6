/**
 * `npm run init-model -- --preset tiny [--out DIR] [--text FILE] [--seed N]`
 *
 * Trains a byte-level BPE tokenizer with the preset's vocabulary size on a text file, builds a randomly
 * initialised GPT of that preset and saves both as a policy checkpoint (step 0). Prints the checkpoint
 * path on stdout; logs go to stderr. Exit 2 for bad usage, 1 for other failures.
 */
import { parseFlags, parsePreset, runCommand, UsageError } from './args.ts';
import type { PresetName } from '../gpt/config.ts';
import { initModelDir } from '../checkpoint/default-checkpoint.ts';
import { INIT_TEXT, initCheckpoint, InitTextError } from '../checkpoint/init-checkpoint.ts';

const USAGE = 'usage: npm run init-model -- --preset tiny|small|base [--out DIR] [--text FILE] [--seed N]';

const log = (line: string): void => void process.stderr.write(line + '\n');

interface Args {
  preset: PresetName;
  out: string;
  text: string;
  seed: number | undefined;
}

function parse(argv: string[]): Args | 'help' {
  const values = parseFlags(argv, {
    preset: { type: 'string' },
    out: { type: 'string' },
    text: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const preset = parsePreset(values.preset, 'tiny');
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || !Number.isSafeInteger(Number(values.seed))) {
      throw new UsageError(`--seed: expected a non-negative integer, got '${values.seed}'`);
    }
    seed = Number(values.seed);
  }
  return {
    preset,
    out: values.out ?? initModelDir(preset),
    text: values.text ?? INIT_TEXT,
    seed,
  };
}

async function main(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  try {
    const out = await initCheckpoint({ ...args, log });
    process.stdout.write(out + '\n');
  } catch (err) {
    throw err instanceof InitTextError ? new UsageError(err.message) : err;
  }
}

runCommand('init-model', () => main(process.argv.slice(2)));
