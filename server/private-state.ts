/**
 * The runtime state (embedded database, checkpoints, admin token) is private to the user running the
 * server: anyone who can write the database's files can forge feedback or model versions, and anyone
 * who can read them can read every conversation. The process umask is set to 0077 before anything is
 * written (child processes, such as the trainer's, inherit it), STATE_DIR is made 0700, and a state
 * directory written by an earlier version with looser modes is tightened at start-up. PGlite sets its
 * files' modes itself (0666, whatever the umask): the database module tightens its data directory
 * (db/connect.ts), which STATE_DIR's 0700 already closes to other users.
 */
import { mkdir } from 'node:fs/promises';
import { makePrivate } from '../db/private-files.ts';

/** New files 0600, new directories 0700, whatever the caller's umask was. */
export function usePrivateUmask(): void {
  process.umask(0o077);
}

/** Creates `dir` (and its parents) 0700, or makes an existing one 0700; tightens what is inside. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await makePrivate(dir);
}
