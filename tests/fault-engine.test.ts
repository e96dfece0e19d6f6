// Fault: the engine worker thread dies mid-stream. /health turns 503 at once; the running replies end
// with an error frame and are stored with finish_reason "error"; a new worker is started with the model
// that was serving; later requests succeed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getMessage } from '../db/index.ts';
import type { StartFrame } from '../server/protocol.ts';
import { databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

for (const target of databaseTargets()) {
  describe(`fault: engine worker killed mid-stream (${target.name})`, () => {
    let t: TestServer;
    let ws: TestSocket;

    before(async () => {
      t = await startTestServer(target);
      ws = await TestSocket.open(t.wsUrl, { token: await newSession(t.url) });
    });
    after(async () => {
      ws?.close();
      await t?.close();
    });

    test('health 503 at once, running replies end in error (stored), the worker restarts with the same version, later requests succeed', async () => {
      const health = async () => {
        const res = await fetch(`${t.url}/health`);
        return { status: res.status, body: (await res.json()) as { ready: boolean; model: { version: number | null }; engine: { running: boolean; restarts: number } } };
      };
      const before = await health();
      assert.deepEqual([before.status, before.body.engine], [200, { running: true, restarts: 0 }]);
      const version = t.server.deps.models.current!.id;

      const ids = ['long-greedy', 'long-beam'];
      ws.send({ type: 'chat', id: ids[0], content: 'Tell me a long story about the city', decoding: { max_new_tokens: 256, repetition_penalty: 1.3 } });
      ws.send({ type: 'chat', id: ids[1], content: 'The history of', decoding: { strategy: 'beam_search', beam_width: 3, max_new_tokens: 256, repetition_penalty: 1.3 } });
      for (const id of ids) await ws.waitFor((f) => f.type === 'delta' && f.id === id);

      await t.server.deps.engine.crashWorker();
      const during = await health();
      assert.equal(during.status, 503, 'unhealthy as soon as the worker is gone');
      assert.equal(during.body.ready, false);

      for (const id of ids) {
        const ex = await ws.exchange(id);
        assert.equal(ex.done, undefined, `${id} cannot have finished`);
        assert.equal(ex.error?.code, 'unavailable', JSON.stringify(ex.error));
        const start = ws.frames.find((f): f is StartFrame => f.type === 'start' && f.id === id)!;
        const stored = await getMessage(t.server.deps.db, start.message_id);
        assert.equal(stored?.finish_reason, 'error');
        assert.equal(stored?.model_version_id, version);
      }

      const back = await eventually(async () => {
        const h = await health();
        return h.status === 200 ? h : null;
      }, { timeoutMs: 120_000, what: 'the restarted worker to be ready' });
      assert.deepEqual([back.body.model.version, back.body.engine], [version, { running: true, restarts: 1 }]);
      assert.equal(t.server.deps.engine.activeModel?.version, String(version));

      const after = await ws.request({ type: 'chat', id: 'after', content: 'The game was', decoding: { max_new_tokens: 12 } });
      assert.ok(after.done, JSON.stringify(after.error));
      assert.equal(after.done.model_version, version);
      assert.equal((await getMessage(t.server.deps.db, after.done.message_id))?.finish_reason, after.done.finish_reason);
      await eventually(() => t.server.deps.engine.requestsInFlight === 0, { what: 'no request left in flight' });
    });
  });
}
