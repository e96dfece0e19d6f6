import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { GPT } from '../model/gpt/gpt.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { PpoConfigSchema } from '../trainer/ppo/config.ts';
import { gae, tokenRewards, whiten } from '../trainer/ppo/gae.ts';
import { adaptiveKl } from '../trainer/ppo/kl-controller.ts';
import { PpoTrainer, type IterationMetrics } from '../trainer/ppo/ppo-trainer.ts';
import { emptyPromptIds, relevanceScores } from '../trainer/reward/relevance.ts';
import { functionReward, modelReward } from '../trainer/ppo/reward-source.ts';
import { renderPrompt } from '../model/tokenizer/index.ts';
import { scalarModelFromTrunk } from '../trainer/reward/reward-model.ts';
import { trainedTinyModel } from './helpers/tiny-model.ts';

let base: GPT;
let tokenizer: Tokenizer;
const PROMPTS = ['The game', 'In the year', 'He was', 'The city of', 'A new', 'The river', 'After the war', 'The team'].map((c) => [{ role: 'user' as const, content: c }]);
/** 10 x the share of the letter "e" among the reply's non-space characters: dense and learnable. */
const letterE = functionReward((_p, reply) => {
  const c = reply.replace(/\s/g, '');
  return c.length ? (10 * (c.match(/e/g)?.length ?? 0)) / c.length : 0;
}, 'share of e');

function copyOf(m: GPT): GPT {
  const c = new GPT(m.config);
  c.copyWeightsFrom(m);
  return c;
}

function bytes(m: GPT): Map<string, Uint8Array> {
  return new Map([...m.namedWeights()].map(([k, v]) => [k, new Uint8Array(Float32Array.from(v.dataSync()).buffer)]));
}

before(async () => {
  ({ model: base, tokenizer } = await trainedTinyModel(60));
});
after(() => base.dispose());

describe('PPO pieces', () => {
  test('GAE matches the recursion and whitening gives mean 0, std 1', () => {
    const r = tokenRewards(Float64Array.from([0.1, 0.2, 0.3]), 1, 0.5); // -0.05, -0.1, -0.15 + 1
    assert.deepEqual(Array.from(r).map((x) => +x.toFixed(6)), [-0.05, -0.1, 0.85]);
    const v = Float64Array.from([0.5, 0.4, 0.3]);
    const { advantages, returns } = gae(r, v, 1, 0.9);
    const d2 = 0.85 - 0.3;
    const d1 = -0.1 + 0.3 - 0.4;
    const d0 = -0.05 + 0.4 - 0.5;
    assert.ok(Math.abs(advantages[2] - d2) < 1e-12);
    assert.ok(Math.abs(advantages[1] - (d1 + 0.9 * d2)) < 1e-12);
    assert.ok(Math.abs(advantages[0] - (d0 + 0.9 * (d1 + 0.9 * d2))) < 1e-12);
    assert.ok(Math.abs(returns[0] - (advantages[0] + 0.5)) < 1e-12);
    const w = whiten(Float64Array.from([1, 2, 3, 4, 10]));
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(mean) < 1e-9, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 1e-6, `std ${std}`);
  });

  test('the adaptive KL coefficient rises above target and falls below it', () => {
    const up = adaptiveKl(0.1, 1, 100);
    up.update(5, 10);
    assert.ok(up.value > 0.1);
    const down = adaptiveKl(0.1, 1, 100);
    down.update(0.1, 10);
    assert.ok(down.value < 0.1);
  });

  test('passing the same model twice is refused', () => {
    const value = scalarModelFromTrunk(base);
    const cfg = PpoConfigSchema.parse({});
    assert.throws(() => new PpoTrainer({ policy: base, reference: base, value, reward: letterE }, tokenizer, cfg), /policy and reference models must be different objects/);
    value.dispose();
  });
});

/** log p(reply | prompt) of each reply token, from one plain forward pass over prompt + reply. */
function replyLogProbs(model: GPT, prompt: number[], reply: number[]): number[] {
  const seq = [...prompt, ...reply];
  const logp = tf.tidy(() => tf.logSoftmax(model.lmLogits(model.hidden(tf.tensor2d([seq], [1, seq.length], 'int32')))).arraySync() as number[][]); // (T, V)
  return reply.map((id, j) => logp[prompt.length + j - 1][id]);
}

describe('relevance bonus', () => {
  // Built in the tests: the tokenizer is loaded in before().
  const replyIds = () => ['the river was', 'in the year of the', 'he'].map((t) => tokenizer.encode(t));
  const promptIds = () => ['The river', 'In the year', 'He was'].map((c) => renderPrompt(tokenizer, [{ role: 'user', content: c }], 64).ids);

  test('it is the mean per-token log-likelihood gain of the reply from its prompt over the empty prompt', async () => {
    const replies = replyIds();
    const prompts = promptIds();
    const refLogp = Float32Array.from(replies.flatMap((r, i) => replyLogProbs(base, prompts[i], r)));
    const got = await relevanceScores(base, tokenizer, replies, refLogp, 1);
    // Flat over repeated calls (the first may fill the model's own caches).
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await relevanceScores(base, tokenizer, replies, refLogp, 1);
    assert.equal(tf.memory().numTensors, before, 'relevanceScores left tensors behind');
    replies.forEach((r, i) => {
      const given = replyLogProbs(base, prompts[i], r);
      const empty = replyLogProbs(base, emptyPromptIds(tokenizer), r);
      const want = given.reduce((a, x, j) => a + x - empty[j], 0) / r.length;
      assert.ok(Math.abs(got[i] - want) < 1e-4, `reply ${i}: ${got[i]} against ${want}`);
    });
  });

  test('a reply scored after the empty prompt itself gains nothing', async () => {
    const replies = replyIds();
    const refLogp = Float32Array.from(replies.flatMap((r) => replyLogProbs(base, emptyPromptIds(tokenizer), r)));
    const got = await relevanceScores(base, tokenizer, replies, refLogp, 1);
    for (const g of got) assert.ok(Math.abs(g) < 1e-4, `relevance ${g}`);
  });

  test('with a weight, PPO reports the rollout\'s relevance, adds it to the score, and leaks no tensors', async () => {
    const zero = functionReward(() => 0, 'zero');
    const run = async (relevanceCoef: number) => {
      const policy = copyOf(base);
      const reference = copyOf(base);
      const value = scalarModelFromTrunk(base);
      const cfg = PpoConfigSchema.parse({ batchSize: 8, miniBatchSize: 4, ppoEpochs: 1, lr: 1e-3, maxNewTokens: 8, seed: 7, relevanceCoef });
      const trainer = new PpoTrainer({ policy, reference, value, reward: zero }, tokenizer, cfg);
      const first = await trainer.step(PROMPTS);
      const tensors = tf.memory().numTensors;
      const second = await trainer.step(PROMPTS);
      assert.equal(tf.memory().numTensors, tensors, 'tensors leaked across PPO iterations');
      const weights = bytes(policy);
      trainer.dispose();
      for (const m of [policy, reference, value]) m.dispose();
      return { first, second, weights };
    };
    const plain = await run(0);
    const withBonus = await run(2);
    assert.equal(plain.first.relevance, null);
    for (const m of [withBonus.first, withBonus.second]) assert.ok(m.relevance !== null && Number.isFinite(m.relevance), `relevance ${m.relevance}`);
    // Same seeds, same rollouts at the first step: only the bonus differs, so the updates differ.
    assert.equal(plain.first.mean_reply_len, withBonus.first.mean_reply_len);
    assert.notDeepEqual(withBonus.weights, plain.weights);
  });
});

describe('PPO learning (tiny preset, programmatic reward)', () => {
  test('mean reward rises clearly while KL to the reference stays bounded; no tensors leak', async () => {
    // Deterministic: fixed seeds for rollouts, minibatch order and weights; the wasm engine is
    // single-threaded, so this run is the same on every machine. Observed: ~1.0 -> ~2.0 over 12
    // iterations (the letter share goes from ~10% to ~20%); asserted: +0.5, half of that.
    const policy = copyOf(base);
    const reference = copyOf(base);
    const value = scalarModelFromTrunk(base);
    const cfg = PpoConfigSchema.parse({ batchSize: 16, miniBatchSize: 8, lr: 1e-3, valueLr: 1e-3, maxNewTokens: 12, klCoef: 0.02, seed: 3 });
    const trainer = new PpoTrainer({ policy, reference, value, reward: letterE }, tokenizer, cfg);
    const metrics: IterationMetrics[] = [];
    let tensorsAfterFirst = 0;
    for (let i = 0; i < 12; i++) {
      metrics.push(await trainer.step([...PROMPTS, ...PROMPTS]));
      if (i === 0) tensorsAfterFirst = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, tensorsAfterFirst, 'tensors leaked across PPO iterations');
    const avg = (ms: IterationMetrics[]) => ms.reduce((a, m) => a + m.reward_mean, 0) / ms.length;
    const first = avg(metrics.slice(0, 3));
    const last = avg(metrics.slice(-3));
    assert.ok(last > first + 0.5, `reward ${first.toFixed(3)} -> ${last.toFixed(3)}`);
    for (const m of metrics) assert.ok(m.kl < 10, `KL ${m.kl} nats at iteration ${m.iteration} exceeds the bound of 10`);
    trainer.dispose();
    for (const m of [policy, reference, value]) m.dispose();
  });

  test('reference and reward weights are byte-identical after PPO', async () => {
    const policy = copyOf(base);
    const reference = copyOf(base);
    const value = scalarModelFromTrunk(base);
    const rm = scalarModelFromTrunk(base);
    const refBefore = bytes(reference);
    const rmBefore = bytes(rm);
    const policyBefore = bytes(policy);
    const cfg = PpoConfigSchema.parse({ batchSize: 8, miniBatchSize: 4, ppoEpochs: 2, lr: 1e-3, maxNewTokens: 8, seed: 5 });
    const trainer = new PpoTrainer({ policy, reference, value, reward: modelReward(rm, tokenizer, 0, 1, 'test reward model') }, tokenizer, cfg);
    await trainer.step(PROMPTS);
    await trainer.step(PROMPTS);
    assert.deepEqual(bytes(reference), refBefore);
    assert.deepEqual(bytes(rm), rmBefore);
    assert.notDeepEqual(bytes(policy), policyBefore, 'the policy itself did train');
    trainer.dispose();
    for (const m of [policy, reference, value, rm]) m.dispose();
  });

  test('a non-finite reward stops the iteration with a clear error', async () => {
    const policy = copyOf(base);
    const reference = copyOf(base);
    const value = scalarModelFromTrunk(base);
    const before = bytes(policy);
    const nan = functionReward(() => Number.NaN, 'broken');
    const trainer = new PpoTrainer({ policy, reference, value, reward: nan }, tokenizer, PpoConfigSchema.parse({ batchSize: 4, maxNewTokens: 4 }));
    await assert.rejects(trainer.step(PROMPTS.slice(0, 4)), (e: unknown) => e instanceof Error && /broken returned NaN/.test(e.message));
    assert.deepEqual(bytes(policy), before);
    trainer.dispose();
    for (const m of [policy, reference, value]) m.dispose();
  });
});
