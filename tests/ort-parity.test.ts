/**
 * ONNX Runtime and tfjs compute the same generation function: logits agree within 1e-4 (max absolute)
 * after prefill and over 64 cached steps, for batch 1 and a ragged batch of 5, on the shipped model
 * and two random configs; greedy and beam-search replies to 50 held-out prompts (the Cornell test
 * movies) are identical token for token, decoded through the continuous batch on each engine. The
 * random configs also run the same cache edits (row reorders, drops, joins, trims) on both engines.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../model/backend.ts';
import { Batcher } from '../model/decode/batcher.ts';
import { chatPrompt } from '../model/decode/chat-reply.ts';
import { createDecoder } from '../model/decode/generate.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import { gptConfig, parseGPTConfig, type GPTConfig } from '../model/gpt/config.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { inferenceModel } from '../model/inference/engine-choice.ts';
import type { DecodeCache, InferenceModel } from '../model/inference/inference-model.ts';
import { loadModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { columnsFor } from '../model/ort/cache-store.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { movieSplit } from '../trainer/data/cornell-dialogues.ts';
import { normalizeUtterance, parseCornellLines } from '../trainer/data/cornell.ts';

const TOLERANCE = 1e-4;
const STEPS = 64;

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, i) => {
    assert.equal(row.length, b[i].length);
    for (let k = 0; k < row.length; k++) m = Math.max(m, Math.abs(row[k] - b[i][k]));
  });
  return m;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Seeded token ids (xorshift), so each config sees fixed prompts. */
function randomPrompt(length: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % vocab;
  });
}

/**
 * One decode run on both engines at once: each step feeds both the tfjs engine's greedy tokens, and
 * the largest logit difference seen is kept. Cache edits are applied to both caches alike.
 */
class TwinDecode {
  worst = 0;

  constructor(
    private readonly tfjsModel: InferenceModel,
    private readonly ortModel: InferenceModel,
    private ca: DecodeCache,
    private cb: DecodeCache,
    private logits: Float32Array[],
  ) {}

  async steps(n: number): Promise<void> {
    for (let s = 0; s < n; s++) {
      const tokens = this.logits.map(argmax);
      const ra = await this.tfjsModel.step(this.ca, tokens);
      this.ca = ra.cache;
      const rb = await this.ortModel.step(this.cb, tokens);
      this.cb = rb.cache;
      this.worst = Math.max(this.worst, maxAbsDiff(ra.logits, rb.logits));
      this.logits = ra.logits;
    }
  }

  /** New prompts prefilled on both engines and joined after the rows held. */
  async join(prompts: number[][]): Promise<void> {
    const ja = await this.tfjsModel.prefill(prompts);
    const jb = await this.ortModel.prefill(prompts);
    this.worst = Math.max(this.worst, maxAbsDiff(ja.logits, jb.logits));
    this.ca = this.tfjsModel.concatRows([this.ca, ja.cache]);
    this.cb = this.ortModel.concatRows([this.cb, jb.cache]);
    this.logits = [...this.logits, ...ja.logits];
  }

  /** Keeps `rows` (reordered or repeated, as beam search forks) and trims padding no row needs. */
  select(rows: number[]): void {
    this.ca = this.ca.selectRows(rows).trimLeft();
    this.cb = this.cb.selectRows(rows).trimLeft();
    this.logits = rows.map((r) => this.logits[r]);
  }

  dispose(): void {
    this.ca.dispose();
    this.cb.dispose();
  }
}

/** Prefill then 64 steps fed the tfjs engine's greedy tokens; the largest logit difference seen at each stage. */
async function compareLogits(tfjsModel: InferenceModel, ortModel: InferenceModel, prompts: number[][]): Promise<{ prefill: number; steps: number }> {
  const a = await tfjsModel.prefill(prompts, { allLogits: true });
  const b = await ortModel.prefill(prompts, { allLogits: true });
  let prefill = maxAbsDiff(a.logits, b.logits);
  a.all!.forEach((rows, i) => (prefill = Math.max(prefill, maxAbsDiff(rows, b.all![i]))));
  const twin = new TwinDecode(tfjsModel, ortModel, a.cache, b.cache, a.logits);
  try {
    await twin.steps(STEPS);
  } finally {
    twin.dispose();
  }
  return { prefill, steps: twin.worst };
}

/**
 * The same cache edits on both engines, with the logits compared after every step: beam-style row
 * reorders and repeats, dropping rows, joining a shorter and a longer batch, trimming shared padding,
 * and enough steps to outgrow the ORT cache's first column capacity. The ORT cache edits its buffers
 * in place where it has room, so each edit is followed by steps that read them.
 */
async function compareCacheEdits(tfjsModel: InferenceModel, ortModel: InferenceModel, vocab: number): Promise<number> {
  const prompts = [4, 11, 7].map((n, i) => randomPrompt(n, vocab, i + 1));
  const a = await tfjsModel.prefill(prompts);
  const b = await ortModel.prefill(prompts);
  const twin = new TwinDecode(tfjsModel, ortModel, a.cache, b.cache, a.logits);
  twin.worst = maxAbsDiff(a.logits, b.logits);
  try {
    await twin.steps(3);
    twin.select([2, 0, 0]); // reorder and repeat, as beam search forks
    await twin.steps(4);
    twin.select([1]); // drop rows: the longest prompt's padding is trimmed away
    await twin.join([randomPrompt(30, vocab, 4)]); // a longer batch joins: the kept row shifts right
    await twin.steps(5);
    twin.select([1, 0]);
    await twin.join([randomPrompt(2, vocab, 5), randomPrompt(5, vocab, 6)]); // shorter ones join, past the rows held
    await twin.steps(40); // past 16, 32 and 64 columns
  } finally {
    twin.dispose();
  }
  return twin.worst;
}

before(async () => {
  await initEngine();
});

const RANDOM_CONFIGS: GPTConfig[] = [
  gptConfig('tiny', { vocabSize: 300, context: 96, initSeed: 3 }),
  parseGPTConfig({ vocabSize: 700, context: 128, dModel: 48, nLayers: 3, nHeads: 4, dropout: 0, initSeed: 11 }),
];

describe('ORT cache column capacity', () => {
  test('powers of two from 16, capped at the window while the columns fit in it, geometric past it', () => {
    assert.deepEqual([1, 16, 17, 33, 90, 96].map((n) => columnsFor(n, 96)), [16, 16, 32, 64, 96, 96]);
    assert.deepEqual([97, 129].map((n) => columnsFor(n, 96)), [128, 256]);
  });
});

describe('ORT and tfjs logits agree within 1e-4', () => {
  for (const [i, config] of RANDOM_CONFIGS.entries()) {
    test(`random config ${i + 1} (d=${config.dModel}, layers=${config.nLayers}, heads=${config.nHeads}): batch 1 and a ragged batch of 5`, async () => {
      const gpt = new GPT(config);
      const ort = await inferenceModel(gpt, 'ort');
      try {
        const single = await compareLogits(gpt, ort, [randomPrompt(13, config.vocabSize, 5)]);
        const ragged = await compareLogits(gpt, ort, [3, 17, 1, 30, 9].map((n, j) => randomPrompt(n, config.vocabSize, 100 + j)));
        for (const [name, r] of Object.entries({ single, ragged })) {
          assert.ok(r.prefill < TOLERANCE, `${name} prefill: max |diff| ${r.prefill}`);
          assert.ok(r.steps < TOLERANCE, `${name} steps: max |diff| ${r.steps}`);
        }
        const edits = await compareCacheEdits(gpt, ort, config.vocabSize);
        assert.ok(edits < TOLERANCE, `cache edits: max |diff| ${edits}`);
      } finally {
        ort.dispose();
        gpt.dispose();
      }
    });
  }
});

describe('shipped model: ORT and tfjs', () => {
  let gpt: GPT;
  let ort: InferenceModel;
  let tokenizer: Tokenizer;

  before(async () => {
    ({ model: gpt, tokenizer } = await loadModel(new URL('../models/default/policy', import.meta.url).pathname));
    ort = await inferenceModel(gpt, 'ort');
  });
  after(() => {
    ort.dispose();
    gpt.dispose();
  });

  test('logits agree within 1e-4 after prefill and 64 cached steps, batch 1 and a ragged batch of 5', async () => {
    const vocab = gpt.config.vocabSize;
    const single = await compareLogits(gpt, ort, [randomPrompt(16, vocab, 7)]);
    const ragged = await compareLogits(gpt, ort, [5, 40, 12, 1, 23].map((n, j) => randomPrompt(n, vocab, 200 + j)));
    for (const [name, r] of Object.entries({ single, ragged })) {
      assert.ok(r.prefill < TOLERANCE, `${name} prefill: max |diff| ${r.prefill}`);
      assert.ok(r.steps < TOLERANCE, `${name} steps: max |diff| ${r.steps}`);
    }
  });

  /** 50 utterances of the Cornell test movies (held out from training) as one-turn prompts. */
  function heldOutPrompts(): string[] {
    const gz = readFileSync(new URL('./fixtures/corpora/cornell-movie-dialogs-subset/movie_lines.txt.gz', import.meta.url));
    const { lines } = parseCornellLines(gunzipSync(gz).toString('latin1').split('\n'));
    const texts = [...lines.values()]
      .filter((l) => movieSplit(l.movieId) === 'test')
      .map((l) => normalizeUtterance(l.text))
      .filter((t) => t.length >= 2);
    assert.ok(texts.length >= 50, `only ${texts.length} held-out utterances`);
    return texts.slice(0, 50);
  }

  /** Every prompt's reply ids through a continuous batch on `model` (all requests submitted at once). */
  async function replies(model: InferenceModel, texts: string[], options: unknown): Promise<number[][]> {
    const opts = parseDecodeOptions(options);
    const batcher = new Batcher(model, 16);
    const out: number[][] = texts.map(() => []);
    await Promise.all(
      texts.map((text, i) => {
        const prompt = chatPrompt(model.config, tokenizer, [{ role: 'user', content: text }], opts);
        return batcher.run({
          prompt: prompt.ids,
          decoder: createDecoder(prompt.ids, opts, prompt.control),
          onEvents: (events) => {
            for (const ev of events) if (ev.type === 'done') out[i] = ev.ids;
          },
        });
      }),
    );
    return out;
  }

  for (const [name, options] of [
    ['greedy', { strategy: 'greedy', max_new_tokens: 24 }],
    ['beam search (width 4, repetition penalty 1.2)', { strategy: 'beam_search', beam_width: 4, repetition_penalty: 1.2, max_new_tokens: 16 }],
  ] as const) {
    test(`${name} replies to 50 held-out prompts are identical token for token`, async () => {
      const texts = heldOutPrompts();
      const tensors = tf.memory().numTensors;
      const fromTfjs = await replies(gpt, texts, options);
      const fromOrt = await replies(ort, texts, options);
      assert.equal(tf.memory().numTensors, tensors);
      assert.ok(fromTfjs.every((ids) => ids.length > 0), 'every reply has tokens');
      fromTfjs.forEach((ids, i) => assert.deepEqual(fromOrt[i], ids, `prompt ${i} '${texts[i]}'`));
    });
  }
});
