/**
 * The online RLHF loop end to end, on the embedded database with the embedded trainer: a simulated
 * rater chats through the real WebSocket API, regenerates to get siblings, rates them by a fixed
 * programmatic preference, and triggers training runs through the admin API. After a few rounds the
 * served model must be a published version, the rater's thumbs-up rate on fresh prompts must have
 * risen, a client streaming all along must have seen no failure across the swaps, and the engine's
 * tensor count must be back at its level. Then rollback through the admin API.
 *
 * The preference: a reply is liked when it contains a digit. The tiny model's sampled replies meet it
 * about a third of the time, so the rate has room to move either way, and nothing tells the trainer
 * the rule: the reward model must learn it from the rater's pairs and thumbs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ModelFrame } from '../server/protocol.ts';
import { shippedDialogues } from '../trainer/online/shipped-dialogues.ts';
import { ADMIN_TOKEN, databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

const likes = (text: string) => /\d/.test(text);

const MAX_NEW_TOKENS = 12;
const ROUNDS = 3;
const PROMPTS_PER_ROUND = 24;
const FRESH_PROMPTS = 32;
const SAMPLES_PER_FRESH_PROMPT = 4;

// A run small enough for a test on two cores, large enough to learn the preference: the reward
// model trains on the rater's pairs and ratings, then PPO runs against it.
const TRAIN_CONFIG = {
  rm: { epochs: 100, maxSteps: 80, batchSize: 16, lr: 1e-3, warmupSteps: 5 },
  userWeight: 1,
  ppo: { iterations: 10, batchSize: 16, miniBatchSize: 8, lr: 1e-3, maxNewTokens: MAX_NEW_TOKENS, klCoef: 0.05 },
  gate: { maxNewTokens: MAX_NEW_TOKENS },
  // Bootstrap pairs (a true Cornell reply over an empty, repeated or foreign one) teach the reward
  // model what the rater never shows it, so PPO cannot win by ending at once or repeating itself.
  bootstrapPairs: 100,
  // PPO prompts from the shipped corpus set only: the watcher's chats would otherwise change them
  // from one test run to the next (recent user prompts), and the test would not be deterministic.
  maxUserPrompts: 0,
  timeBudgetSec: 900,
};

const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' };
const sampling = (seed: number) => ({ strategy: 'sample' as const, max_new_tokens: MAX_NEW_TOKENS, seed });

interface RunRecord {
  id: number;
  status: string;
  error: string | null;
  policy_version_id: number | null;
  metrics: Record<string, unknown>;
}

async function json<T>(res: Response): Promise<T> {
  const body = await res.text();
  assert.ok(res.ok, `${res.status} ${body}`);
  return JSON.parse(body) as T;
}

describe('online loop (embedded trainer, simulated rater)', { timeout: 900_000 }, () => {
  const target = databaseTargets()[0]; // PGlite: the default deployment; the multi-replica suite covers PostgreSQL
  let srv: TestServer;
  let token: string;
  let socket: TestSocket;
  let nextId = 0;
  let prompts: { train: string[]; fresh: string[] };

  before(async () => {
    srv = await startTestServer(target, {
      TRAINER: 'embedded',
      TRAIN_MIN_NEW_PAIRS: '0',
      TRAIN_POLL_MS: '200',
      TRAIN_CONFIG: JSON.stringify(TRAIN_CONFIG),
      MODEL_SYNC_MS: '500',
    });
    token = await newSession(srv.url);
    socket = await TestSocket.open(srv.wsUrl, { token });
    const sets = await shippedDialogues();
    prompts = {
      train: sets.train.slice(-ROUNDS * PROMPTS_PER_ROUND).map((d) => d[0].content),
      fresh: sets.heldOut.slice(0, FRESH_PROMPTS).map((d) => d[0].content),
    };
  });
  after(async () => {
    socket?.close();
    await srv?.close();
  });

  async function chat(content: string, seed: number) {
    const ex = await socket.request({ type: 'chat', id: ++nextId, content, decoding: sampling(seed) });
    assert.ok(ex.done, `chat failed: ${JSON.stringify(ex.error)}`);
    return ex.done;
  }

  async function rate(messageId: number, text: string): Promise<1 | -1> {
    const value = likes(text) ? 1 : -1;
    const id = ++nextId;
    socket.send({ type: 'rate', id, message_id: messageId, value });
    await socket.waitFor((f) => f.type === 'rated' && f.id === id);
    return value;
  }

  /** The rater's thumbs-up rate on prompts it has never used, and the versions that wrote the replies. */
  async function freshRate(seedBase: number): Promise<{ rate: number; versions: Set<number> }> {
    let up = 0;
    let n = 0;
    const versions = new Set<number>();
    for (const [i, p] of prompts.fresh.entries()) {
      for (let s = 0; s < SAMPLES_PER_FRESH_PROMPT; s++) {
        const done = await chat(p, seedBase + i * 10 + s);
        versions.add(done.model_version);
        up += likes(done.text) ? 1 : 0;
        n++;
      }
    }
    return { rate: up / n, versions };
  }

  async function runToEnd(config: object = {}): Promise<RunRecord> {
    const { run } = await json<{ run: RunRecord }>(await fetch(`${srv.url}/api/admin/train`, { method: 'POST', headers: admin, body: JSON.stringify({ config }) }));
    return eventually(
      async () => {
        const { run: r } = await json<{ run: RunRecord }>(await fetch(`${srv.url}/api/admin/runs/${run.id}`, { headers: admin }));
        return ['succeeded', 'failed', 'cancelled'].includes(r.status) ? r : null;
      },
      { timeoutMs: 600_000, what: `training run ${run.id} to finish` },
    );
  }

  test('ratings become runs; published versions serve; the thumbs-up rate rises; no stream fails; tensors return to their level', async () => {
    const engine = srv.server.deps.engine;
    const firstVersion = srv.server.deps.models.current!.id;
    const tensorsBefore = (await engine.stats()).numTensors;
    const baseline = await freshRate(1_000_000);
    assert.deepEqual([...baseline.versions], [firstVersion]);

    // A second client streams greedy replies for the whole test: every request must end in `done`.
    const watcher = await TestSocket.open(srv.wsUrl, { token: await newSession(srv.url) });
    let watching = true;
    const watched: { ok: number; failed: string[]; versions: Set<number> } = { ok: 0, failed: [], versions: new Set() };
    const watchLoop = (async () => {
      for (let k = 0; watching; k++) {
        try {
          const ex = await watcher.request({ type: 'chat', id: `w${k}`, content: prompts.fresh[k % prompts.fresh.length], decoding: { strategy: 'greedy', max_new_tokens: MAX_NEW_TOKENS } });
          if (ex.done && ex.done.finish_reason !== 'cancelled') {
            watched.ok++;
            watched.versions.add(ex.done.model_version);
          } else watched.failed.push(JSON.stringify(ex.error ?? ex.done));
        } catch (err) {
          watched.failed.push(String(err));
        }
      }
    })();

    const runs: RunRecord[] = [];
    try {
    for (let round = 0; round < ROUNDS; round++) {
      let up = 0;
      for (const [i, p] of prompts.train.slice(round * PROMPTS_PER_ROUND, (round + 1) * PROMPTS_PER_ROUND).entries()) {
        const first = await chat(p, round * 1000 + i * 2);
        const id = ++nextId;
        const again = await socket.request({ type: 'regenerate', id, message_id: first.message_id, decoding: sampling(round * 1000 + i * 2 + 1) });
        assert.ok(again.done, `regenerate failed: ${JSON.stringify(again.error)}`);
        up += (await rate(first.message_id, first.text)) > 0 ? 1 : 0;
        up += (await rate(again.done.message_id, again.done.text)) > 0 ? 1 : 0;
      }
      const run = await runToEnd();
      runs.push(run);
      const served = run.metrics.gate_passed === true ? await eventually(() => srv.server.deps.models.current!.id === run.policy_version_id && run.policy_version_id, { what: 'the published version to be served' }) : srv.server.deps.models.current!.id;
      console.log(`round ${round + 1}: rater liked ${up}/${PROMPTS_PER_ROUND * 2}; run ${run.id} ${run.status} -> version ${run.policy_version_id} (${String(run.metrics.phase)}; gate ${JSON.stringify(run.metrics.gate_reasons)}; ${String(run.metrics.seconds)} s); serving ${served}`);
      assert.equal(run.status, 'succeeded', `run ${run.id}: ${run.error}`);
      if (run.metrics.gate_passed === true) await socket.waitFor((f) => f.type === 'model' && (f as ModelFrame).version === run.policy_version_id);
    }
    } finally {
      watching = false;
      await watchLoop;
      watcher.close();
    }

    // (a) new versions were published and served.
    const published = runs.filter((r) => r.metrics.gate_passed === true).map((r) => r.policy_version_id!);
    assert.ok(published.length >= 1, `no run published a version: ${JSON.stringify(runs.map((r) => r.metrics.gate_reasons))}`);
    const after = await freshRate(1_000_000);
    assert.deepEqual([...after.versions], [published.at(-1)], 'fresh replies come from the last published version');

    // (b) The rate on the same fresh prompts with the same seeds, before and after. The margin is a
    // two-proportion z-test: the rise must be at least 2 standard errors of the difference of two
    // independent rates over n replies each (one-sided p < 0.023), e.g. 0.12 for n = 128 near 0.4.
    // Same prompts and seeds on both sides only make the true noise smaller than this.
    const n = prompts.fresh.length * SAMPLES_PER_FRESH_PROMPT;
    const pooled = (baseline.rate + after.rate) / 2;
    const margin = 2 * Math.sqrt((pooled * (1 - pooled) * 2) / n);
    console.log(`thumbs-up rate on ${n} fresh replies: ${baseline.rate.toFixed(3)} -> ${after.rate.toFixed(3)} (margin ${margin.toFixed(3)})`);
    assert.ok(after.rate - baseline.rate >= margin, `thumbs-up rate ${baseline.rate.toFixed(3)} -> ${after.rate.toFixed(3)}, needed a rise of ${margin.toFixed(3)}`);

    // (c) No request failed during any swap, and the watcher saw the versions change under it.
    assert.deepEqual(watched.failed, []);
    assert.ok(watched.ok > 0);
    assert.ok(watched.versions.size >= 2, `the watcher saw versions ${[...watched.versions]}`);

    // (d) The replaced weights were disposed: the worker holds one model's tensors again.
    // (The stats object, not its tensor count, is the value waited for: with ONNX Runtime serving the
    // worker holds no tfjs tensors, and a count of 0 would read as "not yet".)
    let last = await engine.stats();
    const released = await eventually(async () => {
      last = await engine.stats();
      return last.drainingVersions.length === 0 && last.liveRows === 0 ? last : null;
    }, { what: 'draining versions to be released' }).catch((err: Error) => assert.fail(`${err.message}; the engine's last stats: ${JSON.stringify(last)}`));
    assert.equal(released.numTensors, tensorsBefore);
    assert.equal(released.liveModels, 1);
    assert.equal(released.liveOrtModels, engine.inference.name === 'ort' ? 1 : 0, 'ONNX Runtime sessions of replaced versions are released');

    // Rollback: activating the first version through the admin API; new replies carry it.
    const res = await fetch(`${srv.url}/api/admin/models/${firstVersion}/activate`, { method: 'POST', headers: admin });
    assert.equal(res.status, 200, await res.text());
    const done = await chat(prompts.fresh[0], 7);
    assert.equal(done.model_version, firstVersion);
    const models = await json<{ serving: number }>(await fetch(`${srv.url}/api/models`));
    assert.equal(models.serving, firstVersion);
  });

  test('a broken candidate is rejected by the gate with its reasons and not swapped in', async () => {
    const serving = srv.server.deps.models.current!.id;
    // PPO with a huge step and no KL penalty wrecks the language model.
    const run = await runToEnd({ ppo: { lr: 0.05, klCoef: 0, iterations: 3 } });
    assert.equal(run.status, 'succeeded', String(run.error));
    assert.equal(run.metrics.gate_passed, false, JSON.stringify(run.metrics));
    const { versions } = await json<{ versions: { id: number; status: string; reasons: string[] }[] }>(await fetch(`${srv.url}/api/models`));
    const candidate = versions.find((v) => v.id === run.policy_version_id)!;
    assert.equal(candidate.status, 'rejected');
    assert.ok(candidate.reasons.length > 0);
    assert.deepEqual(candidate.reasons, run.metrics.gate_reasons);
    assert.equal(srv.server.deps.models.current!.id, serving);
    const done = await chat(prompts.fresh[1], 8);
    assert.equal(done.model_version, serving);
  });

  test('a run over its time budget fails cleanly and publishes nothing', async () => {
    const before = (await json<{ versions: unknown[] }>(await fetch(`${srv.url}/api/models`))).versions.length;
    const run = await runToEnd({ timeBudgetSec: 1 });
    assert.equal(run.status, 'failed');
    assert.match(String(run.error), /exceeded its time budget of 1s/);
    assert.equal((await json<{ versions: unknown[] }>(await fetch(`${srv.url}/api/models`))).versions.length, before);
  });

  test('runs and their records are visible through the admin API', async () => {
    const { runs } = await json<{ runs: RunRecord[] }>(await fetch(`${srv.url}/api/admin/runs`, { headers: admin }));
    assert.ok(runs.length >= ROUNDS);
    const r = runs.find((x) => x.status === 'succeeded')!;
    assert.equal(typeof r.metrics.ppo_kl, 'number');
    assert.equal(r.metrics.progress, 1);
    const bad = await fetch(`${srv.url}/api/admin/train`, { method: 'POST', headers: admin, body: JSON.stringify({ config: { ppo: { iterations: -1 } } }) });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /ppo\.iterations/);
    const missing = await fetch(`${srv.url}/api/admin/runs/999999`, { headers: admin });
    assert.equal(missing.status, 404);
    const unauth = await fetch(`${srv.url}/api/admin/train`, { method: 'POST' });
    assert.equal(unauth.status, 401);
  });
});
