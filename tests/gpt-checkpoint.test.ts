import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { generateToEnd } from '../model/decode/generate.ts';
import type { GPT } from '../model/gpt/gpt.ts';
import { loadModel, saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { trainBpe } from '../model/tokenizer/index.ts';
import { tinyTokenizer, untrainedTinyModel } from './helpers/tiny-model.ts';

let dir: string;
let model: GPT;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'model-ckpt-'));
  model = await untrainedTinyModel({ initSeed: 11 });
});
after(async () => {
  model.dispose();
  await rm(dir, { recursive: true, force: true });
});

function bits(t: tf.Tensor): Uint32Array {
  return new Uint32Array(Float32Array.from(t.dataSync()).buffer);
}

describe('model checkpoints', () => {
  test('save then load is bit-exact and generates the same reply', async () => {
    const path = join(dir, 'a');
    await saveModel(path, { model, tokenizer: tinyTokenizer(), step: 3, metrics: { loss: 1.5 } });
    const loaded = await loadModel(path);
    try {
      assert.equal(loaded.meta.step, 3);
      assert.equal(loaded.meta.kind, 'policy');
      assert.equal(loaded.tokenizer.hash, tinyTokenizer().hash);
      assert.notEqual(loaded.model.prefix, model.prefix);
      const mine = model.namedWeights();
      for (const [name, v] of loaded.model.namedWeights()) assert.deepEqual(bits(v), bits(mine.get(name)!), name);
      const prompt = [256, 257, 300, 301, 260, 258];
      const a = await generateToEnd(model, prompt, { max_new_tokens: 10 }, { eotId: 260 });
      const b = await generateToEnd(loaded.model, prompt, { max_new_tokens: 10 }, { eotId: 260 });
      assert.deepEqual(b.ids, a.ids);
    } finally {
      loaded.model.dispose();
    }
  });

  test('a corrupted byte in the weights is refused and no model is left behind', async () => {
    const path = join(dir, 'b');
    await saveModel(path, { model, tokenizer: tinyTokenizer() });
    const file = join(path, 'model.safetensors');
    const bytes = await readFile(file);
    bytes[100] ^= 0x01;
    await writeFile(file, bytes);
    const before = tf.memory().numTensors;
    await assert.rejects(loadModel(path), /sha256/);
    assert.equal(tf.memory().numTensors, before);
  });

  test('a tokenizer that is not the one the model was trained with is refused', async () => {
    const path = join(dir, 'c');
    await saveModel(path, { model, tokenizer: tinyTokenizer() });
    const other = trainBpe(['completely different text, different merges entirely ' .repeat(50)], { vocabSize: 300 });
    await writeFile(join(path, 'tokenizer.json'), JSON.stringify(other.toJSON()));
    await assert.rejects(loadModel(path), /tokenizer.json has hash .* but the model was trained with/);
  });

  test('a config that does not match the weights is refused naming the tensor', async () => {
    const path = join(dir, 'd');
    await saveModel(path, { model, tokenizer: tinyTokenizer() });
    const metaFile = join(path, 'meta.json');
    const meta = JSON.parse(await readFile(metaFile, 'utf8'));
    meta.config.dModel = 64;
    await writeFile(metaFile, JSON.stringify(meta));
    await assert.rejects(loadModel(path), /shape/);
  });

  test('saving with a tokenizer of another vocabulary size is refused', async () => {
    const other = trainBpe(['abc abc abd '.repeat(20)], { vocabSize: 270 });
    await assert.rejects(saveModel(join(dir, 'e'), { model, tokenizer: other }), /tokenizer has \d+ ids but the model's vocabSize is 512/);
  });
});
