/**
 * `npm run export -- --checkpoint DIR --format hf --out OUT`
 *
 * Writes a policy checkpoint as a Hugging Face GPT-2 directory (model/hf/export.ts). Prints OUT on
 * stdout. Exit 2 for bad usage, 1 for other failures.
 */
import { initEngine } from '../backend.ts';
import { exportHf } from '../hf/export.ts';
import { parseFlags, runCommand, UsageError } from './args.ts';

const USAGE = 'usage: npm run export -- --checkpoint DIR --format hf --out OUT';

async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    checkpoint: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return void process.stdout.write(USAGE + '\n');
  if (!values.checkpoint) throw new UsageError('--checkpoint DIR is required');
  if (!values.out) throw new UsageError('--out OUT is required');
  if ((values.format ?? 'hf') !== 'hf') throw new UsageError(`--format: unknown format '${values.format}'; the one format is hf`);
  await initEngine();
  const r = await exportHf(values.checkpoint, values.out);
  process.stderr.write(`exported ${r.tensors} tensors and a ${r.vocabSize}-token tokenizer\n`);
  process.stdout.write(r.out + '\n');
}

runCommand('export', () => main(process.argv.slice(2)));
