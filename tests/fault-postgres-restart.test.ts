// Fault test: the PostgreSQL server goes away under a running chat server and comes back. While it is
// down /health says not ready (503) and requests that need the database are refused as `unavailable`
// (never `internal`); a reply that was streaming goes on (the engine needs no database) and is stored
// once the database is back; afterwards the same server process serves chats again, no restart.
//
// It stops and starts the local cluster of DATABASE_URL with pg_ctlcluster, so it runs only where
// that is possible and allowed (root, a Debian-style cluster on DATABASE_URL's port) and is skipped
// with the reason otherwise. The cluster is started again whatever happens (finally).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { getMessage } from '../db/index.ts';
import type { ErrorFrame } from '../server/protocol.ts';
import { openScratchDatabase } from './helpers/scratch-database.ts';
import { eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

// The outage must begin while the long reply is still being written: tfjs decoding 1024 tokens takes
// seconds even on an idle machine, where ONNX Runtime could finish first. The server's engine worker
// takes its environment from this process.
process.env.INFERENCE_ENGINE = 'tfjs';

const run = promisify(execFile);

/** The cluster serving DATABASE_URL, or why this test cannot restart it. */
async function findCluster(): Promise<{ version: string; name: string } | { skip: string }> {
  const url = process.env.DATABASE_URL;
  if (!url) return { skip: 'DATABASE_URL is not set' };
  if (process.getuid?.() !== 0) return { skip: 'restarting PostgreSQL with pg_ctlcluster needs root' };
  const { hostname, port } = new URL(url);
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname)) return { skip: `DATABASE_URL's server (${hostname}) is not on this machine` };
  let listing: string;
  try {
    listing = (await run('pg_lsclusters', ['--no-header'])).stdout;
    await run('sh', ['-c', 'command -v pg_ctlcluster']);
  } catch {
    return { skip: 'pg_lsclusters / pg_ctlcluster are not available' };
  }
  // "15  main    5432 online postgres /var/lib/postgresql/15/main /var/log/..."
  const cluster = listing
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find(([, , p, status]) => p === (port || '5432') && status?.startsWith('online'));
  if (!cluster) return { skip: `no online cluster listens on port ${port || '5432'} (pg_lsclusters)` };
  return { version: cluster[0], name: cluster[1] };
}

const cluster = await findCluster();

describe('fault: PostgreSQL restarts under a running server', { skip: 'skip' in cluster ? cluster.skip : false }, () => {
  const { version, name } = cluster as { version: string; name: string };
  const ctl = (action: 'stop' | 'start') => run('pg_ctlcluster', [version, name, action]);
  let t: TestServer;
  let token: string;
  let ws: TestSocket;

  before(async () => {
    t = await startTestServer({ name: 'PostgreSQL', open: () => openScratchDatabase(process.env.DATABASE_URL!, 'test_pg_restart') }, { MAX_NEW_TOKENS: '1024' });
    token = await newSession(t.url);
    ws = await TestSocket.open(t.wsUrl, { token });
  });
  after(async () => {
    ws?.close();
    await t?.close();
  });

  test('not ready while down, recovers without a restart; a running stream finishes and is stored', async () => {
    assert.ok((await ws.request({ type: 'chat', id: 'before', content: 'Hello there', decoding: { max_new_tokens: 4 } })).done);
    ws.send({ type: 'chat', id: 'long', content: 'Tell me a long story about the river', decoding: { max_new_tokens: 1024, repetition_penalty: 1.3 } });
    await ws.waitFor((f) => f.type === 'delta' && f.id === 'long');

    const longDeltas = () => ws.frames.filter((f) => f.type === 'delta' && f.id === 'long').length;
    let endedWhileDown = false;
    try {
      await ctl('stop');
      const health = await eventually(async () => {
        const res = await fetch(`${t.url}/health`);
        return res.status === 503 ? ((await res.json()) as { ready: boolean; database: { ok: boolean; error?: string } }) : undefined;
      }, { what: '/health to report the database down' });
      assert.equal(health.ready, false);
      assert.equal(health.database.ok, false);
      assert.ok(health.database.error);
      // 1024 tokens on tfjs take seconds even on an idle machine: the reply is still being written now.
      assert.equal(t.server.deps.engine.requestsInFlight, 1, 'the long reply is still generating with the database down');
      const deltasWhenDown = longDeltas();

      // What needs the database is refused as unavailable (503), not as a server fault.
      const list = await fetch(`${t.url}/api/conversations`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(list.status, 503, await list.clone().text());
      assert.equal(((await list.json()) as { error: { code: string } }).error.code, 'unavailable');
      const refused = await ws.request({ type: 'chat', id: 'during', content: 'Anyone there?', decoding: { max_new_tokens: 4 } });
      assert.equal(refused.error?.code, 'unavailable', JSON.stringify(refused));
      assert.equal(refused.start, undefined);

      // The reply that was streaming is not the database's business until it ends.
      await eventually(() => t.server.deps.engine.requestsInFlight === 0, { timeoutMs: 60_000, what: 'the running generation to end' });
      endedWhileDown = (await fetch(`${t.url}/health`)).status === 503;
      assert.ok(longDeltas() > deltasWhenDown, `deltas went on with the database down (${deltasWhenDown} before, ${longDeltas()} after)`);
      assert.ok(!ws.frames.some((f) => f.type === 'done' && f.id === 'long'), 'its done frame waits until the reply is stored');
    } finally {
      await ctl('start');
    }

    await eventually(async () => (await fetch(`${t.url}/health`)).status === 200, { timeoutMs: 30_000, what: '/health to recover' });
    const long = await ws.exchange('long');
    assert.ok(long.done, `the stream finished: ${JSON.stringify(long.error)}`);
    assert.equal(long.deltas.join(''), long.done.text);
    const stored = await getMessage(t.server.deps.db, long.done.message_id);
    assert.deepEqual([stored?.content, stored?.finish_reason], [long.done.text, long.done.finish_reason], 'stored once the database was back');
    assert.equal(endedWhileDown, true, "the long reply's generation ended while the database was still down");

    // Same process, new work: a chat, a rating, the conversation list.
    const after = await ws.request({ type: 'chat', id: 'after', content: 'Back again', decoding: { max_new_tokens: 6 } });
    assert.ok(after.done, JSON.stringify(after.error));
    const rated = await fetch(`${t.url}/api/messages/${after.done.message_id}/rating`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ value: 1 }),
    });
    assert.equal(rated.status, 200);
    assert.equal((await fetch(`${t.url}/api/conversations`, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
    const errors = ws.frames.filter((f): f is ErrorFrame => f.type === 'error' && f.code === 'internal');
    assert.deepEqual(errors, []);
  });
});
