// Private runtime state: checkpoints written under the server's umask, the embedded database's files
// (PGlite sets 0666 itself; the store tightens them), and the database's lock file, which appears with
// the owner's pid already inside and refuses a second opener.
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { migrateToLatest, openDatabase } from '../db/index.ts';
import { ensurePrivateDir, usePrivateUmask } from '../server/private-state.ts';
import { trainedTinyModel } from './helpers/tiny-model.ts';

async function looseFiles(dir: string): Promise<string[]> {
  const loose: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const mode = (await lstat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) loose.push(`${path} ${mode.toString(8)}`);
    if (entry.isDirectory()) loose.push(...(await looseFiles(path)));
  }
  return loose;
}

describe('private state', () => {
  test('under the server\'s umask, STATE_DIR is 0700 (an existing one tightened) and a checkpoint\'s files are 0600', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'private-state-'));
    const previous = process.umask();
    try {
      usePrivateUmask();
      const stateDir = join(parent, 'state');
      await ensurePrivateDir(stateDir);
      assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
      const { model, tokenizer } = await trainedTinyModel();
      await saveModel(join(stateDir, 'checkpoints', 'run-1'), { model, tokenizer });
      model.dispose();
      assert.deepEqual(await looseFiles(stateDir), []);
      assert.ok((await readdir(join(stateDir, 'checkpoints', 'run-1'))).length >= 3);

      const old = join(parent, 'old');
      process.umask(0o022);
      await ensurePrivateDir(join(old, 'pgdata'));
      await writeFile(join(old, 'pgdata', 'PG_VERSION'), '17\n', { mode: 0o666 });
      usePrivateUmask();
      await ensurePrivateDir(old);
      assert.deepEqual(await looseFiles(old), [], 'a state directory from before is tightened at start-up');
    } finally {
      process.umask(previous);
      await rm(parent, { recursive: true, force: true });
    }
  });

  test('the data directory is 0700 and no file in it is open to group or others, at open and after close', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'pglite-files-'));
    try {
      const handle = await openDatabase({ stateDir });
      const dataDir = join(stateDir, 'pgdata');
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
      assert.deepEqual(await looseFiles(dataDir), [], 'tightened once open');
      await migrateToLatest(handle.db);
      await handle.close();
      assert.deepEqual(await looseFiles(dataDir), [], 'and again when closed (files the migrations created)');
      assert.ok((await readdir(join(dataDir, 'base'))).length > 0);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  test('the lock holds the pid from the moment it exists; a second opener is refused; a dead owner\'s lock is taken over', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'pglite-lock-'));
    const lock = join(stateDir, 'pgdata.lock');
    try {
      const first = await openDatabase({ stateDir });
      assert.equal(await readFile(lock, 'utf8'), `${process.pid}\n`);
      assert.equal((await stat(lock)).mode & 0o077, 0);
      await assert.rejects(openDatabase({ stateDir }), /is in use \(lock .*pgdata\.lock\)/);
      assert.deepEqual((await readdir(stateDir)).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left behind');
      await first.close();
      await assert.rejects(stat(lock), { code: 'ENOENT' });

      // A lock left by a process that no longer exists.
      await writeFile(lock, '2147483646\n');
      const second = await openDatabase({ stateDir });
      assert.equal(await readFile(lock, 'utf8'), `${process.pid}\n`);
      await second.close();
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
