/**
 * POST /api/admin/train refuses bad bodies with a 400 naming the problem (not JSON, unknown fields,
 * out-of-range or inconsistent run settings) and queues a run for an empty body. The trainer is off
 * here: the run stays queued.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_TOKEN, databaseTargets, startTestServer, type TestServer } from './helpers/server-harness.ts';

const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };
let srv: TestServer;
before(async () => {
  srv = await startTestServer(databaseTargets()[0]);
});
after(() => srv?.close());

test('bad training requests get a 400 naming the problem', async () => {
  const cases: [string, RegExp][] = [
    ['not json', /must be JSON/],
    ['{"bogus": 1}', /bogus/],
    [JSON.stringify({ config: { ppo: { iterations: -1 } } }), /ppo\.iterations/],
    [JSON.stringify({ config: { ppo: { batchSize: 4, miniBatchSize: 8 } } }), /miniBatchSize \(8\) must not exceed ppo\.batchSize \(4\)/],
    [JSON.stringify({ config: { gate: { maxPplRatio: 0.5 } } }), /gate\.maxPplRatio/],
  ];
  for (const [body, message] of cases) {
    const res = await fetch(`${srv.url}/api/admin/train`, { method: 'POST', headers: admin, body });
    const text = await res.text();
    assert.equal(res.status, 400, `${body}: ${text}`);
    assert.match(text, message);
  }
});

test('an empty body queues a run with the admin trigger', async () => {
  const res = await fetch(`${srv.url}/api/admin/train`, { method: 'POST', headers: admin });
  assert.equal(res.status, 202);
  const { run, trainer } = (await res.json()) as { run: { id: number; status: string; config: { trigger: string } }; trainer: string };
  assert.equal(run.status, 'queued');
  assert.equal(run.config.trigger, 'admin');
  assert.equal(trainer, 'external');
  const got = await fetch(`${srv.url}/api/admin/runs/${run.id}`, { headers: admin });
  assert.equal(((await got.json()) as { run: { id: number } }).run.id, run.id);
});
