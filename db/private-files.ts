// Makes a directory tree private to its owner: group and other permissions removed from every file
// and directory under it (symlinks are not followed). The embedded database needs it: PGlite's file
// system sets each file's mode itself (0666) instead of leaving it to the process umask.
import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function makePrivate(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info || info.isSymbolicLink()) return;
  // Files can vanish while PGlite runs (a WAL segment recycled): skip them.
  if ((info.mode & 0o077) !== 0) await chmod(path, info.mode & 0o700).catch(() => {});
  if (info.isDirectory()) for (const name of await readdir(path).catch(() => [])) await makePrivate(join(path, name));
}
