/**
 * Builds the web client into web/dist when its sources changed since the last build (a hash of every
 * input file, kept in web/dist/.build-hash), so `npm start` (its prestart) serves a current page at
 * the cost of a hash when nothing changed. `--force` always builds.
 *
 *   tsx web/build.ts [--force]
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(WEB, '..');
export const DIST = join(WEB, 'dist');
const STAMP = join(DIST, '.build-hash');
/** Inputs of the build besides web/ itself (dependency versions). */
const EXTRA_INPUTS = [join(ROOT, 'package-lock.json')];
const SKIP = new Set(['dist', 'node_modules']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => !SKIP.has(e.name) && !e.name.startsWith('.'))
    .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

export function sourceHash(): string {
  const hash = createHash('sha256');
  for (const f of [...files(WEB), ...EXTRA_INPUTS.filter(existsSync)]) {
    if (!statSync(f).isFile()) continue;
    hash.update(relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return hash.digest('hex');
}

export function isStale(): boolean {
  if (!existsSync(join(DIST, 'index.html')) || !existsSync(join(DIST, 'dashboard', 'index.html')) || !existsSync(STAMP)) return true;
  return readFileSync(STAMP, 'utf8').trim() !== sourceHash();
}

/** Builds web/dist unless it is current; returns whether it built. */
export async function buildWeb({ force = false, quiet = false }: { force?: boolean; quiet?: boolean } = {}): Promise<boolean> {
  if (!force && !isStale()) return false;
  const hash = sourceHash();
  const { build } = await import('vite');
  const t0 = performance.now();
  await build({ configFile: join(WEB, 'vite.config.ts'), logLevel: quiet ? 'error' : 'warn' });
  writeFileSync(STAMP, hash + '\n');
  if (!quiet) console.log(`web client built into ${relative(process.cwd(), DIST) || DIST} in ${Math.round(performance.now() - t0)} ms`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildWeb({ force: process.argv.includes('--force') }).catch((err: unknown) => {
    console.error('web client build failed:', err);
    process.exit(1);
  });
}
