/**
 * The admin token: ADMIN_TOKEN when set; otherwise the one saved in `${STATE_DIR}/admin-token`, or a
 * new random one written there with mode 0600 (and printed once, on stderr, when created). The file is
 * 0600 whenever it is written or read, whatever mode an existing one had.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const ADMIN_TOKEN_FILE = 'admin-token';

export async function ensureAdminToken({ adminToken, stateDir }: { adminToken?: string; stateDir: string }): Promise<{ token: string; file?: string; created: boolean }> {
  if (adminToken) return { token: adminToken, created: false };
  const file = join(stateDir, ADMIN_TOKEN_FILE);
  try {
    const saved = (await readFile(file, 'utf8')).trim();
    if (saved.length >= 16) {
      // A file copied in or written by hand with a looser mode is made private too.
      if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
      return { token: saved, file, created: false };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the admin token ${file}: ${(err as Error).message}`);
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString('base64url');
  // A new file, then renamed over the old one: `mode` applies only when a file is created, so
  // rewriting an existing file in place would keep whatever mode it had.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, token + '\n', { mode: 0o600, flag: 'w' });
  await chmod(temp, 0o600);
  await rename(temp, file);
  return { token, file, created: true };
}
