/**
 * Things the tests build that are expensive and deterministic (a trained tiny model), built once and
 * kept under .state/test-cache, in a directory named by a hash of what produces them: the inputs
 * given, the source files of the code, the fixture and the lockfile (the engine's version). Changing
 * any of them makes a new entry; nothing needs to be cleared by hand.
 *
 * Test files run in their own processes, possibly at once: an entry is built in a temp directory
 * and renamed into place, so a reader sees a whole entry or none. When two processes build the same
 * entry together, the first rename wins and the other's copy is dropped (both are the same).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TEST_CACHE_DIR = join(ROOT, '.state', 'test-cache');

/** Every file under `dir` whose name ends in one of `exts`, sorted. */
function sourceFiles(dir: string, exts: string[]): string[] {
  if (!existsSync(dir)) throw new Error(`test cache: ${dir} does not exist`);
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(path, exts));
    else if (e.isFile() && exts.some((x) => e.name.endsWith(x))) out.push(path);
  }
  return out.sort();
}

/** sha256 of `inputs` and of the files (relative paths and contents); `paths` are relative to the repo root. */
export function cacheKey(inputs: unknown, paths: string[]): string {
  const h = createHash('sha256').update(JSON.stringify(inputs));
  for (const p of paths) {
    const abs = join(ROOT, p);
    const files = p.endsWith('/') ? sourceFiles(abs, ['.ts', '.mjs', '.json']) : [abs];
    for (const f of files) h.update(relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * The directory of entry `name`-`key`, built by `build(dir)` into a fresh directory if it is not
 * there yet. Treat it as read-only: copy it before changing anything in it.
 */
export async function cachedDir(name: string, key: string, build: (dir: string) => Promise<void>): Promise<string> {
  const final = join(TEST_CACHE_DIR, `${name}-${key}`);
  if (existsSync(final)) return final;
  await mkdir(TEST_CACHE_DIR, { recursive: true });
  const tmp = await mkdtemp(join(TEST_CACHE_DIR, `.building-${name}-`));
  try {
    await build(tmp);
    try {
      await rename(tmp, final);
    } catch (err) {
      // Another process renamed its copy into place first (a non-empty directory is not replaced).
      const code = (err as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(final))) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return final;
}
