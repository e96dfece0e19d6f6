/**
 * `npm run checkpoint:migrate -- DIR [DIR...]`
 *
 * Converts format-1 checkpoints (weights.bin) in place to model.safetensors; already converted ones are
 * left as they are. Prints one line per directory. Exit 2 for bad usage, 1 if any directory failed.
 */
import { migrateCheckpoint } from '../checkpoint/index.ts';
import { runCommand } from './args.ts';

const USAGE = 'usage: npm run checkpoint:migrate -- DIR [DIR...]';

async function main(dirs: string[]): Promise<number> {
  if (dirs.length === 0 || dirs.some((d) => d.startsWith('-'))) {
    process.stderr.write(USAGE + '\n');
    return dirs.includes('--help') || dirs.includes('-h') ? 0 : 2;
  }
  let failed = 0;
  for (const dir of dirs) {
    try {
      const meta = await migrateCheckpoint(dir);
      process.stdout.write(meta === null ? `${dir}: already model.safetensors\n` : `${dir}: converted to model.safetensors (sha256 ${meta.weights.sha256})\n`);
    } catch (err) {
      failed += 1;
      process.stderr.write(`checkpoint:migrate: ${(err as Error).message}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

runCommand('checkpoint:migrate', () => main(process.argv.slice(2)));
