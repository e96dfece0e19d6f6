/**
 * The admin token: ADMIN_TOKEN when set; otherwise the one saved in `${STATE_DIR}/admin-token`, or a
 * new random one written there with mode 0600 (and printed once, on stderr, when created).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const ADMIN_TOKEN_FILE = 'admin-token';

export async function ensureAdminToken({ adminToken, stateDir }: { adminToken?: string; stateDir: string }): Promise<{ token: string; file?: string; created: boolean }> {
  if (adminToken) return { token: adminToken, created: false };
  const file = join(stateDir, ADMIN_TOKEN_FILE);
  try {
    const saved = (await readFile(file, 'utf8')).trim();
    if (saved.length >= 16) return { token: saved, file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the admin token ${file}: ${(err as Error).message}`);
  }
  await mkdir(stateDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  await writeFile(file, token + '\n', { mode: 0o600 });
  return { token, file, created: true };
}
