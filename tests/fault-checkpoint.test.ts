// Fault test: corrupted checkpoints registered as new policy versions and activated through the admin
// API (one flipped byte in model.safetensors at the start, middle and end; the file truncated by one byte
// and by half; NaN weights under a matching sha256, which only the warm-up forward can catch) are
// refused with a 4xx naming the problem, marked rejected with the reason, and cannot
// be activated again; the old version keeps serving: a stream running across the attempt finishes on
// it, clients hear of no model change, and a chat afterwards says the old version in its done frame.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { insertModelVersion } from '../db/index.ts';
import type { ApiErrorBody, ModelVersionInfo } from '../server/protocol.ts';
import { ADMIN_TOKEN, databaseTargets, newSession, startTestServer, TestSocket, tinyCheckpoint, type TestServer } from './helpers/server-harness.ts';

interface Corruption {
  name: string;
  /** Damages the checkpoint copy in `dir`. */
  apply(dir: string): Promise<void>;
  /** What the refusal says. */
  reason: RegExp;
}

const flip = (where: (size: number) => number) => async (dir: string) => {
  const bytes = await readFile(join(dir, 'model.safetensors'));
  bytes[where(bytes.length)] ^= 0x01;
  await writeFile(join(dir, 'model.safetensors'), bytes);
};
const cut = (keep: (size: number) => number) => async (dir: string) => {
  await truncate(join(dir, 'model.safetensors'), keep((await readFile(join(dir, 'model.safetensors'))).length));
};
/** Every float32 after the safetensors header a NaN, and meta.json's sha256 made to match: intact as a file, broken as a model. */
const poison = async (dir: string) => {
  const bytes = await readFile(join(dir, 'model.safetensors'));
  const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
  const nan = new Float32Array((bytes.length - dataStart) / 4).fill(Number.NaN);
  const poisoned = Buffer.concat([bytes.subarray(0, dataStart), Buffer.from(nan.buffer)]);
  await writeFile(join(dir, 'model.safetensors'), poisoned);
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  meta.weights.sha256 = createHash('sha256').update(poisoned).digest('hex');
  await writeFile(join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
};

const CORRUPTIONS: Corruption[] = [
  { name: 'first byte flipped', apply: flip(() => 0), reason: /sha256 mismatch/ },
  { name: 'a middle byte flipped', apply: flip((n) => Math.floor(n / 2) + 3), reason: /sha256 mismatch/ },
  { name: 'last byte flipped', apply: flip((n) => n - 1), reason: /sha256 mismatch/ },
  { name: 'truncated by one byte', apply: cut((n) => n - 1), reason: /truncated/ },
  { name: 'truncated to half', apply: cut((n) => Math.floor(n / 2)), reason: /truncated/ },
  { name: 'all NaN under a matching sha256', apply: poison, reason: /non-finite/ },
];

for (const target of databaseTargets()) {
  describe(`fault: corrupted checkpoints are refused (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let ws: TestSocket;
    let dir: string;
    let serving: number;
    const admin = (path: string, init: RequestInit = {}) => fetch(`${t.url}${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });

    before(async () => {
      t = await startTestServer(target, { MAX_NEW_TOKENS: '256' });
      token = await newSession(t.url);
      ws = await TestSocket.open(t.wsUrl, { token });
      dir = await mkdtemp(join(tmpdir(), 'fault-checkpoint-'));
      serving = t.server.deps.models.current!.id;
    });
    after(async () => {
      ws?.close();
      await t?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    for (const corruption of CORRUPTIONS) {
      test(`model.safetensors ${corruption.name}: activation refused, version rejected, the old one serves`, async () => {
        const copy = join(dir, corruption.name.replace(/\W+/g, '-'));
        await cp(await tinyCheckpoint(), copy, { recursive: true });
        await corruption.apply(copy);
        // Registered as the trainer would: the sha256 the checkpoint was written with.
        const version = await insertModelVersion(t.server.deps.db, { kind: 'policy', checkpointPath: copy, sha256: t.server.deps.models.current!.sha256, parentId: serving, metrics: { source: 'fault-test' } });

        const from = ws.frames.length;
        ws.send({ type: 'chat', id: `during-${version.id}`, content: 'Tell me a long story about the river', decoding: { max_new_tokens: 256, repetition_penalty: 1.3 } });
        await ws.waitFor((f) => f.type === 'start' && f.id === `during-${version.id}`);

        const res = await admin(`/api/admin/models/${version.id}/activate`, { method: 'POST' });
        const body = (await res.json()) as ApiErrorBody;
        assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${JSON.stringify(body)}`);
        assert.equal(body.error.code, 'conflict');
        assert.match(body.error.message, corruption.reason);

        const during = await ws.exchange(`during-${version.id}`);
        assert.ok(during.done, JSON.stringify(during.error));
        assert.equal(during.done.model_version, serving, 'the running stream finished on the old version');

        const listed = (await (await fetch(`${t.url}/api/models`)).json()) as { serving: number; versions: ModelVersionInfo[] };
        assert.equal(listed.serving, serving);
        const rejected = listed.versions.find((v) => v.id === version.id)!;
        assert.equal(rejected.status, 'rejected');
        assert.ok(rejected.reasons.some((r) => corruption.reason.test(r)), JSON.stringify(rejected.reasons));
        assert.deepEqual(listed.versions.filter((v) => v.status === 'active').map((v) => v.id), [serving]);

        const again = await admin(`/api/admin/models/${version.id}/activate`, { method: 'POST' });
        assert.equal(again.status, 409, 'a rejected version stays refused');
        assert.match(((await again.json()) as ApiErrorBody).error.message, /rejected/);

        const after = await ws.request({ type: 'chat', id: `after-${version.id}`, content: 'Hello', decoding: { max_new_tokens: 6 } });
        assert.ok(after.done, JSON.stringify(after.error));
        assert.equal(after.done.model_version, serving, 'the old version answers');
        assert.equal(t.server.deps.models.current!.id, serving);
        const stats = await t.server.deps.engine.stats();
        assert.deepEqual([stats.activeVersion, stats.drainingVersions], [String(serving), []]);
        assert.deepEqual(ws.frames.slice(from).filter((f) => f.type === 'model'), [], 'clients were told of no model change');
        const health = (await (await fetch(`${t.url}/health`)).json()) as { ready: boolean; model: { version: number } };
        assert.deepEqual([health.ready, health.model.version], [true, serving]);
      });
    }
  });
}
