/**
 * Data-parallel training: a batch split across this thread and gradient workers gives the same update
 * as the whole batch on one thread (the shards' gradients are combined by their token shares), the
 * training loop runs with it, and no tensors are left behind.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { GPT } from '../model/gpt/gpt.ts';
import { packedSource } from '../trainer/batching/batches.ts';
import { AdamW } from '../trainer/optim/adamw.ts';
import { shardBatch } from '../trainer/parallel/batch-shards.ts';
import { DataParallel } from '../trainer/parallel/data-parallel.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { packDocuments } from '../trainer/batching/pack-documents.ts';
import { runTraining } from '../trainer/train-loop.ts';
import { FIXTURE_TEXT, tinyTokenizer, untrainedTinyModel } from './helpers/tiny-model.ts';

const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
const adamw = (m: GPT) => new AdamW(m.namedWeights(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dp-'));
});
after(() => rm(dir, { recursive: true, force: true }));

function batches() {
  const tok = tinyTokenizer();
  const stream = packDocuments(tok, FIXTURE_TEXT.split('\n').slice(0, 60));
  return packedSource(stream, { batchSize: 6, context: 32, seed: 1 });
}

describe('data-parallel training', () => {
  test('shards split the rows and keep every token', () => {
    const b = batches().batch(0, 0);
    b.w[3] = 0; // a padding target in the first shard
    const shards = shardBatch(b, 4);
    assert.deepEqual(shards.map((s) => s.rows), [1, 2, 1, 2]);
    assert.equal(shards[0].tokens, b.cols - 1);
    assert.equal(shards.reduce((n, s) => n + s.tokens, 0), b.w.filter((w) => w > 0).length);
    assert.deepEqual(Int32Array.from(shards.flatMap((s) => [...s.x])), b.x);
    assert.equal(shardBatch(b, 50).length, b.rows);
  });

  test('two threads make the same update as one, and leave no tensors', async () => {
    const one = await untrainedTinyModel({ dropout: 0 });
    const two = new GPT(one.config);
    two.copyWeightsFrom(one);
    const source = batches();
    const [dp1, dp2] = await Promise.all([DataParallel.start(one, 1), DataParallel.start(two, 2)]);
    const [o1, o2] = [adamw(one), adamw(two)];
    let level = 0;
    for (let i = 0; i < 4; i++) {
      const b = source.batch(0, i);
      const r1 = await dp1.step(o1, b, 1e-2, 1);
      const r2 = await dp2.step(o2, b, 1e-2, 1);
      assert.ok(Math.abs(r1.loss - r2.loss) < 1e-4, `step ${i}: loss ${r1.loss} vs ${r2.loss}`);
      assert.ok(Math.abs(r1.gradNorm - r2.gradNorm) < 1e-3 * Math.max(1, r1.gradNorm), `step ${i}: grad norm ${r1.gradNorm} vs ${r2.gradNorm}`);
      // Flat from the first step on (each model keeps one cached tensor from its first forward).
      if (i === 0) level = tf.memory().numTensors;
      else assert.equal(tf.memory().numTensors, level, `tensors after step ${i}`);
    }
    const w2 = two.namedWeights();
    for (const [name, v] of one.namedWeights()) {
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(v, w2.get(name)!))).dataSync()[0]);
      assert.ok(diff < 1e-4, `${name} differs by ${diff}`);
    }
    await Promise.all([dp1.dispose(), dp2.dispose()]);
    for (const o of [o1, o2]) o.dispose();
    one.dispose();
    two.dispose();
  });

  test('the training loop runs with threads: 2 and lowers the loss', async () => {
    const before = tf.memory().numTensors;
    const model = await untrainedTinyModel();
    const fixed = batches().batch(0, 0);
    const source = { batchesPerEpoch: 1, batch: () => fixed };
    const loop = { epochs: 20, maxSteps: 0, batchSize: 6, lr: 5e-3, minLr: 5e-3, warmupSteps: 0, weightDecay: 0, gradClip: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, seed: 1, threads: 2 };
    const r = await runTraining({ stage: 'pretrain', model, tokenizer: tinyTokenizer(), train: source, heldOut: source, loop, config: loop, out: join(dir, 'run'), parent: null, progress: quiet });
    assert.ok(r.eval!.loss < Math.log(tinyTokenizer().vocabSize) - 1, `loss ${r.eval!.loss}`);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
