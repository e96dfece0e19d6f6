/**
 * The trainer's schedule in a real server (embedded trainer, PGlite): a run is queued once
 * TRAIN_MIN_NEW_PAIRS pairs plus ratings have arrived since the last run started, not before, and not
 * again without new feedback; with TRAIN_INTERVAL not yet passed, new feedback waits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listTrainingRuns } from '../db/index.ts';
import { databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

const QUICK = { rm: { maxSteps: 2, batchSize: 8 }, ppo: { iterations: 1, batchSize: 8, miniBatchSize: 8, ppoEpochs: 1, lr: 1e-7, maxNewTokens: 6 }, gate: { maxNewTokens: 6 }, bootstrapPairs: 16 };

for (const target of databaseTargets()) {
  describe(`training schedule (${target.name})`, { timeout: 300_000 }, () => {
    let srv: TestServer;
    let socket: TestSocket;
    let n = 0;

    before(async () => {
      srv = await startTestServer(target, { TRAINER: 'embedded', TRAIN_MIN_NEW_PAIRS: '3', TRAIN_INTERVAL: '0', TRAIN_POLL_MS: '100', TRAIN_CONFIG: JSON.stringify(QUICK) });
      socket = await TestSocket.open(srv.wsUrl, { token: await newSession(srv.url) });
    });
    after(async () => {
      socket?.close();
      await srv?.close();
    });

    /** Waits for two more schedule checks, so that one began after every rating so far was stored. */
    async function scheduleChecked(): Promise<void> {
      const trainer = srv.server.deps.trainer!;
      const seen = trainer.scheduleChecks;
      await eventually(() => trainer.scheduleChecks >= seen + 2, { timeoutMs: 30_000, what: 'two more schedule checks' });
    }

    async function rateOne(): Promise<void> {
      const ex = await socket.request({ type: 'chat', id: ++n, content: `hello ${n}`, decoding: { strategy: 'greedy', max_new_tokens: 4 } });
      const id = ++n;
      socket.send({ type: 'rate', id, message_id: ex.done!.message_id, value: 1 });
      await socket.waitFor((f) => f.type === 'rated' && f.id === id);
    }

    test('queued at the threshold, once', async () => {
      const runs = () => listTrainingRuns(srv.database.db);
      await rateOne();
      await rateOne();
      await scheduleChecked();
      assert.equal((await runs()).length, 0, 'two ratings are below the threshold of three');
      await rateOne();
      const [run] = await eventually(async () => {
        const r = await runs();
        return r.length > 0 && ['succeeded', 'failed'].includes(r[0].status) ? r : null;
      }, { timeoutMs: 240_000, what: 'the scheduled run to finish' });
      assert.equal(run.status, 'succeeded', String(run.error));
      assert.equal(run.config.trigger, 'schedule');
      assert.equal(run.config.new_ratings, 3);
      await scheduleChecked();
      assert.equal((await runs()).length, 1, 'no new feedback since the run started: nothing queued');
    });
  });
}
