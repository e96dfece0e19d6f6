/**
 * `npm run import -- --from DIR --out OUT`
 *
 * Reads a Hugging Face GPT-2-family directory into our policy checkpoint (model/hf/import.ts). Prints
 * OUT on stdout; what was added to the vocabulary goes to stderr. Exit 2 for bad usage, 1 for other
 * failures (a directory that is not GPT-2-compatible says what differs).
 */
import { initEngine } from '../backend.ts';
import { importHf } from '../hf/import.ts';
import { parseFlags, runCommand, UsageError } from './args.ts';

const USAGE = 'usage: npm run import -- --from DIR --out OUT';

async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    from: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return void process.stdout.write(USAGE + '\n');
  if (!values.from) throw new UsageError('--from DIR is required');
  if (!values.out) throw new UsageError('--out OUT is required');
  await initEngine();
  const r = await importHf(values.from, values.out, (line) => process.stderr.write(line + '\n'));
  const c = r.meta.config as { nLayers: number; dModel: number; nHeads: number; context: number; vocabSize: number };
  process.stderr.write(`imported ${(r.params / 1e6).toFixed(1)}M parameters: ${c.nLayers} layers, d=${c.dModel}, ${c.nHeads} heads, context ${c.context}, vocabulary ${c.vocabSize}\n`);
  process.stdout.write(r.out + '\n');
}

runCommand('import', () => main(process.argv.slice(2)));
