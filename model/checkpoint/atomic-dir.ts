/**
 * Replace-a-directory-atomically: fill a sibling temp dir, fsync it, rename it into place.
 *
 * Guarantees:
 * - `dir` is never half-written: it is either the old complete directory, the new complete one,
 *   or (only for the instant between the two renames of a replacement, since Node has no
 *   atomic directory exchange) absent.
 * - On any failure the temp dir is removed and the old `dir`, if any, is left (or put back) in place.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

/** Writes a file and fsyncs it. Fails if the file already exists. */
export async function writeFileDurable(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` atomically: readers see the old file or the whole new one, never a part. */
export async function writeFileAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFileDurable(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** fsync a directory so renames/creations inside it are durable. Best effort (not supported everywhere). */
async function fsyncDir(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
    await fh.sync();
  } catch {
    // Some platforms/file systems refuse to open or fsync directories; durability is then up to the OS.
  } finally {
    await fh?.close().catch(() => {});
  }
}

function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Creates `${dir}.tmp-${pid}-${random}`, lets `fill` write files into it (use writeFileDurable),
 * fsyncs it and renames it to `dir`, replacing an existing `dir` (moved aside to
 * `${dir}.old-${pid}-${random}` first, removed after the new one is in place).
 */
export async function writeDirAtomically(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  if (basename(target) === '' || target === parent) throw new Error(`refusing to replace the root directory '${target}'`);
  await mkdir(parent, { recursive: true });

  const tmp = `${target}.tmp-${uniqueSuffix()}`;
  await mkdir(tmp);
  try {
    await fill(tmp);
    await fsyncDir(tmp);

    if (await exists(target)) {
      const old = `${target}.old-${uniqueSuffix()}`;
      await rename(target, old);
      try {
        await rename(tmp, target);
      } catch (err) {
        // Put the old checkpoint back before reporting the failure.
        await rename(old, target);
        throw err;
      }
      await fsyncDir(parent);
      // The new checkpoint is in place; failing to delete the old copy is not a failed save.
      await rm(old, { recursive: true, force: true }).catch(() => {});
    } else {
      await rename(tmp, target);
      await fsyncDir(parent);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

