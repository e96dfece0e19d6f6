import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm as removeDir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpointMeta } from '../model/checkpoint/index.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import type { ChatMessage, Tokenizer } from '../model/tokenizer/index.ts';
import { sequenceSource } from '../trainer/batching/batches.ts';
import { gateCandidate } from '../trainer/online/gate.ts';
import { ONLINE_RUN_DEFAULTS, runOnlineTraining } from '../trainer/online/online-run.ts';
import { PpoConfigSchema } from '../trainer/ppo/config.ts';
import { PpoTrainer } from '../trainer/ppo/ppo-trainer.ts';
import { functionReward } from '../trainer/ppo/reward-source.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { scalarModelFromTrunk } from '../trainer/reward/reward-model.ts';
import { dialogueSequences } from '../trainer/batching/dialogue-sequences.ts';
import { trainedTinyModel, untrainedTinyModel } from './helpers/tiny-model.ts';

const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
const user = (content: string): ChatMessage[] => [{ role: 'user', content }];
const PROMPTS = ['The game', 'In the year', 'He was', 'The city of', 'A new', 'The river', 'After the war', 'The team'].map(user);
const DIALOGUES: ChatMessage[][] = PROMPTS.map((p, i) => [...p, { role: 'assistant', content: `the ${['war', 'city', 'river', 'game'][i % 4]} of the year was long .` }]);

let base: GPT;
let tokenizer: Tokenizer;
let dir: string;

before(async () => {
  ({ model: base, tokenizer } = await trainedTinyModel(60));
  dir = await mkdtemp(join(tmpdir(), 'online-'));
  await saveModel(join(dir, 'active'), { model: base, tokenizer });
  const random = await untrainedTinyModel({ initSeed: 5 });
  await saveModel(join(dir, 'random'), { model: random, tokenizer });
  random.dispose();
});
after(async () => {
  base.dispose();
  await removeDir(dir, { recursive: true, force: true });
});

function copyOf(m: GPT): GPT {
  const c = new GPT(m.config);
  c.copyWeightsFrom(m);
  return c;
}

function heldOut() {
  const seqs = DIALOGUES.flatMap((d) => dialogueSequences(tokenizer, d, base.config.context + 1));
  return sequenceSource(seqs, { batchSize: 4, context: base.config.context, seed: 1, padId: tokenizer.special.pad });
}

describe('candidate gate', () => {
  const words = functionReward((_p, reply) => reply.split(/\s+/).filter(Boolean).length / 10, 'length');

  test('the active policy passes against itself', async () => {
    const candidate = copyOf(base);
    const r = await gateCandidate({ candidate, active: base, reference: base, tokenizer, reward: words, prompts: PROMPTS, heldOut: heldOut() });
    assert.deepEqual(r.reasons, []);
    assert.ok(r.passed);
    assert.ok(Math.abs(r.candidate.kl) < 1e-6);
    candidate.dispose();
  });

  test('a candidate trained to give empty replies is rejected with the reason', async () => {
    const candidate = copyOf(base);
    const reference = copyOf(base);
    const value = scalarModelFromTrunk(base);
    // A broken reward: shorter is better, so the policy learns to end its turn at once.
    const shortIsGood = functionReward((_p, reply) => -reply.split(/\s+/).filter(Boolean).length, 'shorter is better');
    const ppo = new PpoTrainer({ policy: candidate, reference, value, reward: shortIsGood }, tokenizer, PpoConfigSchema.parse({ batchSize: 16, miniBatchSize: 8, lr: 3e-3, klCoef: 0, maxNewTokens: 12, seed: 2 }));
    for (let i = 0; i < 10; i++) await ppo.step([...PROMPTS, ...PROMPTS]);
    ppo.dispose();
    const r = await gateCandidate({ candidate, active: base, reference, tokenizer, reward: words, prompts: PROMPTS, heldOut: heldOut() });
    // Pushed hard towards short replies with no KL penalty, it drifts far from the reference and
    // loses the language: the gate names what it failed.
    assert.equal(r.passed, false);
    assert.ok(r.reasons.length > 0);
    assert.ok(r.reasons.every((x) => /empty replies|mean reward|KL to the reference|perplexity|repeat/.test(x)), r.reasons.join('; '));
    for (const m of [candidate, reference, value]) m.dispose();
  });
});

describe('online run', () => {
  test('reward model, PPO and gate run from plain inputs and write candidate checkpoints, a rejected one too', async () => {
    const pairs = DIALOGUES.flatMap((d) => [
      { prompt: d.slice(0, 1), chosen: d[1].content, rejected: '', source: 'siblings' },
      { prompt: d.slice(0, 1), chosen: d[1].content, rejected: 'the the the the', source: 'bootstrap' },
    ]);
    const config = {
      ...ONLINE_RUN_DEFAULTS,
      rm: { ...ONLINE_RUN_DEFAULTS.rm, maxSteps: 10, batchSize: 8 },
      ppo: PpoConfigSchema.parse({ iterations: 2, batchSize: 8, miniBatchSize: 4, ppoEpochs: 2, maxNewTokens: 8 }),
    };
    const out = join(dir, 'run1');
    const iterations: number[] = [];
    // The reference is a freshly initialised model, near uniform over the vocabulary (log 512 = 6.2
    // nats a token), while the trained policy's greedy tokens are likely ones: the candidate, a few
    // PPO steps from that policy, is tens of nats per reply away from the reference, past the gate's
    // bound of 20. Its checkpoint is written all the same, with the gate's verdict.
    const r = await runOnlineTraining({
      policyDir: join(dir, 'active'),
      referenceDir: join(dir, 'random'),
      rewardDir: null,
      pairs,
      ratings: [{ prompt: PROMPTS[0], reply: 'the war', label: 1, source: 'user' }],
      heldOutPairs: pairs.slice(0, 4),
      prompts: PROMPTS,
      gatePrompts: PROMPTS.slice(0, 4),
      gateDialogues: DIALOGUES,
      outDir: out,
      config,
      progress: quiet,
      onIteration: (m) => iterations.push(m.iteration),
    });
    assert.deepEqual(iterations, [1, 2]);
    assert.equal(r.reward.kept, true, 'with no previous reward model the new one is kept');
    assert.equal((await readCheckpointMeta(r.reward.dir!)).kind, 'reward');
    const meta = await readCheckpointMeta(r.policy.dir);
    assert.equal(meta.kind, 'policy');
    assert.equal(meta.parent, join(dir, 'active'));
    const gate = r.policy.gate;
    assert.equal(gate.passed, false);
    assert.ok(gate.candidate.kl > 20, `KL ${gate.candidate.kl}`);
    assert.deepEqual(gate.reasons, [`KL to the reference ${gate.candidate.kl.toFixed(2)} nats exceeds 20`]);
    assert.deepEqual((meta.extra as { gate: unknown }).gate, JSON.parse(JSON.stringify(gate)), 'the verdict is stored with the candidate');
    await assert.rejects(
      runOnlineTraining({ policyDir: join(dir, 'active'), referenceDir: join(dir, 'active'), rewardDir: r.reward.dir, pairs, ratings: [], heldOutPairs: pairs.slice(0, 4), prompts: PROMPTS, gatePrompts: PROMPTS, gateDialogues: DIALOGUES, outDir: join(dir, 'run2'), config: { ...config, timeBudgetSec: 0.001 }, progress: quiet }),
      /exceeded its time budget/,
    );
  });
});
