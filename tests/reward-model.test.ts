import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { seededRng } from '../model/decode/rng.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { bootstrapPairs, parseHhDialogue, parsePairRecord, readPairsJsonl, type PreferencePair } from '../trainer/reward/pairs.ts';
import { scalarModelFromTrunk } from '../trainer/reward/reward-model.ts';
import { evaluatePairs, evaluatePairsDetailed, trainRewardModel } from '../trainer/reward/rm-train.ts';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { loadRewardCheckpoint } from '../trainer/ppo/reward-source.ts';
import { combineScores, fitRelevanceWeight } from '../trainer/reward/relevance-weight.ts';
import { tinyTokenizer, trainedTinyModel, untrainedTinyModel } from './helpers/tiny-model.ts';

const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
const WORDS = 'the a game city river year team song war king house music film old new first long small great north'.split(' ');

/** Synthetic pairs with a learnable rule: the chosen reply contains "thanks", the rejected one does not. */
function syntheticPairs(n: number, seed: number): PreferencePair[] {
  const rng = seededRng(seed);
  const sentence = () => Array.from({ length: 3 + Math.floor(rng() * 4) }, () => WORDS[Math.floor(rng() * WORDS.length)]);
  return Array.from({ length: n }, () => {
    const chosen = sentence();
    chosen.splice(Math.floor(rng() * chosen.length), 0, 'thanks');
    return { prompt: [{ role: 'user' as const, content: sentence().join(' ') }], chosen: chosen.join(' '), rejected: sentence().join(' '), source: 'synthetic' };
  });
}

describe('reward model', () => {
  test('learns a preference rule: held-out accuracy >= 90% (tiny preset)', async () => {
    const policy = await untrainedTinyModel();
    const rm = scalarModelFromTrunk(policy);
    policy.dispose();
    const tok = tinyTokenizer();
    const before = await evaluatePairs(rm, tok, syntheticPairs(100, 2));
    const cfg = { epochs: 3, maxSteps: 0, batchSize: 16, lr: 3e-3, minLr: 3e-4, warmupSteps: 10, weightDecay: 0, gradClip: 1, margin: 0, pointwiseWeight: 1, centeringWeight: 0.01, seed: 1 };
    const r = await trainRewardModel({ rm, tokenizer: tok, pairs: syntheticPairs(400, 1), heldOut: syntheticPairs(100, 2), cfg, progress: quiet });
    assert.ok(r.evals.synthetic.accuracy >= 0.9, `held-out accuracy ${r.evals.synthetic.accuracy} (before training: ${before.synthetic.accuracy})`);
    assert.ok(r.evals.synthetic.margin > 0);
    assert.ok(Number.isFinite(r.rewardMean) && r.rewardStd > 0);
    // Scoring leaves no tensors behind (after a first pass has built the causal masks of these lengths).
    await evaluatePairs(rm, tok, syntheticPairs(20, 3));
    const start = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await evaluatePairs(rm, tok, syntheticPairs(20, 3));
    assert.equal(tf.memory().numTensors, start);
    rm.dispose();
  });

  test('HH-RLHF and TRL records parse into prompt, chosen and rejected', () => {
    const hh = parsePairRecord({
      chosen: '\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a fruit\n\nAssistant: Apple.',
      rejected: '\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a fruit\n\nAssistant: No.',
    });
    assert.deepEqual(hh, {
      prompt: [{ role: 'user', content: 'Hi there' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Name a fruit' }],
      chosen: 'Apple.',
      rejected: 'No.',
      source: 'hh-rlhf',
    });
    assert.deepEqual(parsePairRecord({ prompt: 'q?', chosen: 'good', rejected: 'bad' }), { prompt: [{ role: 'user', content: 'q?' }], chosen: 'good', rejected: 'bad', source: 'trl' });
    assert.equal(parsePairRecord({ chosen: 'no turns', rejected: 'x' }), null);
    assert.equal(parseHhDialogue('plain'), null);
  });

  test('a JSONL file with malformed lines is read with a count and line numbers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pairs-'));
    const path = join(dir, 'p.jsonl');
    await writeFile(path, [JSON.stringify({ prompt: 'a', chosen: 'b', rejected: 'c' }), '{bad json', '', JSON.stringify({ foo: 1 })].join('\n'));
    const { pairs, summary } = await readPairsJsonl(path);
    assert.equal(pairs.length, 1);
    assert.equal(summary.malformed, 2);
    assert.deepEqual(summary.firstMalformedLines, [2, 4]);
    await assert.rejects(readPairsJsonl(join(dir, 'missing.jsonl')), /pairs file not found/);
  });

  test('bootstrap pairs prefer the true reply over other, repeated, empty or truncated ones', () => {
    const dialogues = Array.from({ length: 50 }, (_, i) => ({
      messages: [
        { role: 'user' as const, content: `question ${i}` },
        { role: 'assistant' as const, content: `the answer number ${i} is here` },
      ],
    }));
    const pairs = bootstrapPairs(dialogues, 1);
    assert.ok(pairs.length >= 45);
    for (const p of pairs) {
      assert.equal(p.source, 'bootstrap');
      assert.notEqual(p.chosen, p.rejected);
      assert.match(p.chosen, /^the answer number \d+ is here$/);
    }
    const kindOf = (p: PreferencePair) => (p.rejected === '' ? 'empty' : /^(\S+)( \1)+$/.test(p.rejected) ? 'repeated' : p.chosen.startsWith(p.rejected) && p.rejected.split(' ').length < 3 ? 'truncated' : 'other');
    const kinds = new Set(pairs.map(kindOf));
    assert.deepEqual([...kinds].sort(), ['empty', 'other', 'repeated', 'truncated']);
    // Each pair says how its rejected reply was made.
    for (const p of pairs) assert.equal(p.kind, kindOf(p), JSON.stringify(p));
  });

  test('held-out figures per rejection kind add up to the per-source ones', async () => {
    const policy = await untrainedTinyModel();
    const rm = scalarModelFromTrunk(policy);
    policy.dispose();
    const dialogues = Array.from({ length: 40 }, (_, i) => ({
      messages: [
        { role: 'user' as const, content: `question ${i}` },
        { role: 'assistant' as const, content: `the answer number ${i} is here` },
      ],
    }));
    const pairs = [...bootstrapPairs(dialogues, 2), ...syntheticPairs(10, 4)];
    const { bySource, byKind } = await evaluatePairsDetailed(rm, tinyTokenizer(), pairs);
    rm.dispose();
    assert.deepEqual(Object.keys(bySource).sort(), ['bootstrap', 'synthetic']);
    assert.deepEqual(Object.keys(byKind).sort(), ['bootstrap/empty', 'bootstrap/other', 'bootstrap/repeated', 'bootstrap/truncated']);
    const kinds = Object.values(byKind);
    assert.equal(kinds.reduce((a, e) => a + e.pairs, 0), bySource.bootstrap!.pairs);
    const right = kinds.reduce((a, e) => a + e.accuracy * e.pairs, 0);
    assert.ok(Math.abs(right - bySource.bootstrap!.accuracy * bySource.bootstrap!.pairs) < 1e-9);
  });
});

describe('relevance weight', () => {
  // Four pairs the head orders right (degenerate rejected replies) and four it orders wrong (another
  // conversation's reply), where relevance is what tells them apart.
  const head = { chosen: [2, 2, 2, 2, 0, 0, 0, 0], rejected: [0, 0, 0, 0, 0.3, 0.3, 0.3, 0.3] };

  test('the weight whose combined score orders the most training pairs right is chosen', () => {
    const relevance = { chosen: [0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5], rejected: [0.4, 0.4, 0.4, 0.4, 0, 0, 0, 0] };
    // 0.5 x 0.5 = 0.25 < 0.3 does not flip the others; 1 does, and 4 x 0.4 = 1.6 < 2 keeps the first four.
    const fit = fitRelevanceWeight(head, relevance);
    assert.equal(fit.weight, 1);
    assert.deepEqual(fit.accuracy, { 0: 0.5, 0.5: 0.5, 1: 1, 2: 1, 4: 1, 8: 0.5 });
    assert.deepEqual(Array.from(combineScores(head, relevance, 2).chosen), [2, 2, 2, 2, 1, 1, 1, 1]);
  });

  test('relevance that does not help gets weight 0', () => {
    const against = { chosen: [0, 0, 0, 0, 0, 0, 0, 0], rejected: [1, 1, 1, 1, 1, 1, 1, 1] };
    assert.equal(fitRelevanceWeight(head, against).weight, 0);
    assert.throws(() => fitRelevanceWeight({ chosen: [], rejected: [] }, { chosen: [], rejected: [] }), /at least one pair/);
  });

  test('PPO reads the weight from a reward checkpoint, and refuses a bad one naming it', async () => {
    const { model: policy, tokenizer } = await trainedTinyModel();
    const rm = scalarModelFromTrunk(policy);
    const dir = await mkdtemp(join(tmpdir(), 'rm-relevance-'));
    const save = (extra: Record<string, unknown>, out: string) => saveModel(join(dir, out), { model: rm, tokenizer, kind: 'reward', step: 1, extra: { reward_mean: 0.5, reward_std: 2, ...extra } });
    await save({ relevance_weight: 2 }, 'good');
    await save({ relevance_weight: -1 }, 'bad');
    await save({}, 'none');
    const good = await loadRewardCheckpoint(join(dir, 'good'), tokenizer);
    assert.deepEqual([good.relevanceWeight, good.mean, good.std], [2, 0.5, 2]);
    assert.match(good.describe, /\+ 2 x relevance/);
    good.dispose();
    const none = await loadRewardCheckpoint(join(dir, 'none'), tokenizer);
    assert.equal(none.relevanceWeight, 0);
    none.dispose();
    await assert.rejects(loadRewardCheckpoint(join(dir, 'bad'), tokenizer), /relevance_weight in meta\.json must be a number >= 0, got -1/);
    rm.dispose();
    policy.dispose();
  });
});
