import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm as removeDir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import {
  createConversation,
  createSession,
  getActiveModelVersion,
  getModelVersion,
  insertMessage,
  inTransaction,
  listModelVersions,
  migrateToLatest,
  openMemoryDatabase,
  recordRating,
  tryTrainerLock,
  type DatabaseHandle,
} from '../db/index.ts';
import { openScratchDatabase } from './helpers/scratch-database.ts';
import { collectRunData } from '../trainer/online/db-inputs.ts';
import { ONLINE_RUN_DEFAULTS, runOnlineTraining } from '../trainer/online/online-run.ts';
import { publishRun } from '../trainer/online/publish.ts';
import { PpoConfigSchema } from '../trainer/ppo/config.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { trainedTinyModel, untrainedTinyModel } from './helpers/tiny-model.ts';

const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
let handle: DatabaseHandle;
let dir: string;

before(async () => {
  handle = await openMemoryDatabase();
  await migrateToLatest(handle.db);
  dir = await mkdtemp(join(tmpdir(), 'online-publish-'));
  const { model, tokenizer } = await trainedTinyModel(40);
  await saveModel(join(dir, 'active'), { model, tokenizer });
  model.dispose();
  const random = await untrainedTinyModel({ initSeed: 5 });
  await saveModel(join(dir, 'random'), { model: random, tokenizer });
  random.dispose();
});
after(async () => {
  await handle.close();
  await removeDir(dir, { recursive: true, force: true });
});

describe('online run against the feedback store', () => {
  test('pairs and ratings are collected, runs are published, and the versions follow the gate', async () => {
    const db = handle.db;
    const { session } = await createSession(db);
    for (let i = 0; i < 6; i++) {
      const conversation = await createConversation(db, { sessionId: session.id });
      const prompt = await insertMessage(db, { conversationId: conversation.id, role: 'user', content: `The game ${i}` });
      const good = await insertMessage(db, { conversationId: conversation.id, parentId: prompt.id, role: 'assistant', origin: 'generated', content: 'the war of the year' });
      const bad = await insertMessage(db, { conversationId: conversation.id, parentId: prompt.id, role: 'assistant', origin: 'generated', content: '' });
      await recordRating(db, { sessionId: session.id, messageId: good.id, value: 1 });
      await recordRating(db, { sessionId: session.id, messageId: bad.id, value: -1 });
      const lonely = await insertMessage(db, { conversationId: conversation.id, parentId: good.id, role: 'user', content: 'and then ?' });
      const reply = await insertMessage(db, { conversationId: conversation.id, parentId: lonely.id, role: 'assistant', origin: 'generated', content: 'the city' });
      await recordRating(db, { sessionId: session.id, messageId: reply.id, value: 1 });
    }
    const data = await collectRunData(db, { heldOutEvery: 3, maxPrompts: 50 });
    assert.equal(data.pairs.length + data.heldOutPairs.length, 6, 'one pair per regenerated prompt');
    assert.ok(data.heldOutPairs.length >= 1 && data.pairs.length >= 1);
    assert.deepEqual(data.pairs[0].prompt, [{ role: 'user', content: data.pairs[0].prompt[0].content }]);
    assert.equal(data.ratings.length, 6, 'the single ratings without a sibling');
    assert.ok(data.ratings.every((r) => r.label === 1 && r.prompt.length === 3));
    assert.equal(data.prompts.length, 12);

    const run = (outDir: string, referenceDir: string, lr: number) =>
      runOnlineTraining({
        policyDir: join(dir, 'active'),
        referenceDir,
        rewardDir: null,
        ...data,
        gatePrompts: data.prompts.slice(0, 4),
        gateDialogues: data.prompts.slice(0, 4).map((p) => [...p, { role: 'assistant' as const, content: 'the war' }]),
        outDir,
        config: { ...ONLINE_RUN_DEFAULTS, rm: { ...ONLINE_RUN_DEFAULTS.rm, maxSteps: 5, batchSize: 4 }, ppo: PpoConfigSchema.parse({ iterations: 1, batchSize: 4, miniBatchSize: 4, ppoEpochs: 1, maxNewTokens: 6, lr }) },
        progress: quiet,
      });

    // A step of 1e-9 leaves the candidate the active policy to float precision, with the active policy
    // as its reference: same replies, same reward, same perplexity, KL 0. It passes and goes live.
    const passing = await run(join(dir, 'run1'), join(dir, 'active'), 1e-9);
    assert.deepEqual(passing.policy.gate.reasons, []);
    assert.equal(passing.policy.gate.passed, true);
    // A trainer that lost its lock publishes nothing (checked inside the publishing transaction).
    const versionsBefore = (await listModelVersions(db)).length;
    await assert.rejects(
      publishRun(db, passing, { activePolicyVersionId: null, activeRewardVersionId: null, trainedPairIds: data.trainedPairIds, lockHeld: async () => false }),
      /no longer holds the trainer lock/,
    );
    assert.equal((await listModelVersions(db)).length, versionsBefore);
    const first = await publishRun(db, passing, { activePolicyVersionId: null, activeRewardVersionId: null, trainedPairIds: data.trainedPairIds, lockHeld: async () => true });
    assert.equal((await getModelVersion(db, first.policyVersionId))?.status, 'active');
    assert.equal((await getActiveModelVersion(db, 'policy'))?.id, first.policyVersionId);
    assert.equal((await getActiveModelVersion(db, 'reward'))?.id, first.rewardVersionId);
    const again = await collectRunData(db, { heldOutEvery: 3, maxPrompts: 50 });
    assert.equal(again.pairs.length, data.pairs.length);

    // Against a freshly initialised reference (near uniform: 6.2 nats a token) the same candidate is
    // tens of nats per reply away, past the gate's bound of 20: stored as rejected, with the reason.
    const failing = await run(join(dir, 'run2'), join(dir, 'random'), 1e-9);
    assert.equal(failing.policy.gate.passed, false);
    assert.deepEqual(failing.policy.gate.reasons, [`KL to the reference ${failing.policy.gate.candidate.kl.toFixed(2)} nats exceeds 20`]);
    const second = await publishRun(db, failing, { activePolicyVersionId: first.policyVersionId, activeRewardVersionId: first.rewardVersionId, trainedPairIds: data.trainedPairIds, lockHeld: async () => true });
    const rejected = await getModelVersion(db, second.policyVersionId);
    assert.equal(rejected?.status, 'rejected');
    assert.deepEqual(rejected?.reasons, failing.policy.gate.reasons);
    assert.equal((await getActiveModelVersion(db, 'policy'))?.id, first.policyVersionId, 'the active policy stays');
    assert.equal((await getActiveModelVersion(db, 'reward'))?.id, second.rewardVersionId, 'a new reward model is activated whatever the gate said');
  });
});

describe('the trainer lock, asked inside a transaction', { skip: !process.env.DATABASE_URL && 'needs DATABASE_URL (PostgreSQL advisory locks)' }, () => {
  test('held while its connection holds it; no longer once released; a second trainer cannot take it meanwhile', async () => {
    const scratch = await openScratchDatabase(process.env.DATABASE_URL!, 'test_lock');
    try {
      const lock = await tryTrainerLock(scratch.connectionString!, () => {});
      assert.ok(lock);
      assert.equal(await inTransaction(scratch.db, (trx) => lock.stillHeld(trx)), true);
      assert.equal(await tryTrainerLock(scratch.connectionString!, () => {}), null);
      await lock.release();
      assert.equal(await lock.stillHeld(scratch.db), false);
      const next = await tryTrainerLock(scratch.connectionString!, () => {});
      assert.ok(next, 'free again');
      await next.release();
    } finally {
      await scratch.close();
    }
  });
});
