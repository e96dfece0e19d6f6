// `npm run models -- register DIR`: a checkpoint imported from Hugging Face, under CHECKPOINT_DIR, is
// registered as a candidate version (verified first), activated through the admin API with the usual
// hot swap, and then writes the replies; paths outside CHECKPOINT_DIR (symlinks resolved), missing and
// corrupted checkpoints are refused with a message naming the problem; the CLI does the same.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { readCheckpointMeta } from '../model/checkpoint/index.ts';
import { importHf } from '../model/hf/import.ts';
import { getModelVersion } from '../db/index.ts';
import type { ModelVersionInfo } from '../server/protocol.ts';
import { checkpointRoot, registerCheckpoint } from '../server/register-checkpoint.ts';
import { ADMIN_TOKEN, databaseTargets, newSession, startTestServer, TestSocket, tinyCheckpoint, type TestServer } from './helpers/server-harness.ts';

const FIXTURE = new URL('./fixtures/hf-gpt2-tiny', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;

let root = '';
let imported = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'register-root-'));
  imported = join(root, 'gpt2-tiny');
  await importHf(FIXTURE, imported);
});
after(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

test('the checkpoint root is CHECKPOINT_DIR, else STATE_DIR/checkpoints', () => {
  assert.equal(checkpointRoot({ CHECKPOINT_DIR: '/srv/ck' }, '/x'), '/srv/ck');
  assert.equal(checkpointRoot({ STATE_DIR: '/var/state' }, '/x'), '/var/state/checkpoints');
  assert.equal(checkpointRoot({}, '/x'), '/x/.state/checkpoints');
});

for (const target of databaseTargets()) {
  describe(`register an imported checkpoint and activate it (${target.name})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(target);
    });
    after(async () => {
      await t?.close();
    });

    test('registered as a candidate, activated by the admin API, then it replies', async () => {
      const serving = t.server.deps.models.current!.id;
      const v = await registerCheckpoint(t.server.deps.db, imported, root);
      assert.equal(v.status, 'candidate');
      assert.equal(v.kind, 'policy');
      assert.equal(v.parent_id, serving);
      assert.equal(v.sha256, (await readCheckpointMeta(imported)).weights.sha256);
      assert.equal(v.metrics.source, 'register');

      const res = await fetch(`${t.url}/api/admin/models/${v.id}/activate`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(res.status, 200, await res.clone().text());
      const listed = (await (await fetch(`${t.url}/api/models`)).json()) as { serving: number; versions: ModelVersionInfo[] };
      assert.equal(listed.serving, v.id);
      assert.equal((await getModelVersion(t.server.deps.db, v.id))!.status, 'active');

      const ws = await TestSocket.open(t.wsUrl, { token: await newSession(t.url) });
      try {
        const reply = await ws.request({ type: 'chat', id: 'after-register', content: 'hello there', decoding: { max_new_tokens: 5 } });
        assert.ok(reply.done, JSON.stringify(reply.error));
        assert.equal(reply.done.model_version, v.id);
      } finally {
        ws.close();
      }
    });

    test('paths outside the root, symlinks out of it, missing and corrupted checkpoints are refused', async () => {
      const db = t.server.deps.db;
      const outside = await tinyCheckpoint();
      await assert.rejects(registerCheckpoint(db, outside, root), /is not under the checkpoint root .* \(CHECKPOINT_DIR\)/);
      const link = join(root, `link-${target.name}`);
      await symlink(outside, link);
      await assert.rejects(registerCheckpoint(db, link, root), /is not under the checkpoint root/);
      await assert.rejects(registerCheckpoint(db, join(root, '..', 'elsewhere'), root), /does not exist/);
      await assert.rejects(registerCheckpoint(db, join(root, 'nope'), root), /checkpoint .* does not exist/);
      const corrupt = join(root, `corrupt-${target.name}`);
      await mkdir(corrupt);
      for (const f of ['meta.json', 'tokenizer.json']) await writeFile(join(corrupt, f), await readFile(join(imported, f)));
      const weights = await readFile(join(imported, 'model.safetensors'));
      weights[weights.length - 1] ^= 1;
      await writeFile(join(corrupt, 'model.safetensors'), weights);
      await assert.rejects(registerCheckpoint(db, corrupt, root), /sha256 mismatch/);
    });
  });
}

test('the CLI registers into the embedded database and refuses a path outside CHECKPOINT_DIR', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'register-cli-'));
  const run = (dir: string) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'server/models-cli.ts', 'register', dir], {
      cwd: ROOT,
      env: { ...process.env, STATE_DIR: stateDir, CHECKPOINT_DIR: root, DATABASE_URL: '' },
    });
  try {
    const { stdout } = await run(imported);
    const v = JSON.parse(stdout.trim().split('\n').at(-1)!);
    assert.equal(v.status, 'candidate');
    assert.equal(v.sha256, (await readCheckpointMeta(imported)).weights.sha256);
    await assert.rejects(run(await tinyCheckpoint()), (err: { code: number; stderr: string }) => err.code === 1 && /models: .* is not under the checkpoint root/.test(err.stderr));
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
