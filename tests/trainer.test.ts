import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpointMeta } from '../model/checkpoint/index.ts';
import { loadModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { renderConversation } from '../model/tokenizer/index.ts';
import { packedSource, sequenceSource } from '../trainer/batching/batches.ts';
import { explicitKeys, FlagError, parseFlags } from '../trainer/flags.ts';
import { learningRate } from '../trainer/optim/schedule.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { dialogueSequences } from '../trainer/batching/dialogue-sequences.ts';
import { frequentReplies, replyKey } from '../trainer/data/frequent-replies.ts';
import { packDocuments } from '../trainer/batching/pack-documents.ts';
import { PretrainStageSchema, runPretrainStage } from '../trainer/stages/pretrain.ts';
import { runSftStage, SftStageSchema } from '../trainer/stages/sft.ts';
import { runTokenizerStage, TokenizerStageSchema } from '../trainer/stages/tokenizer.ts';
import { NonFiniteLossError, runTraining } from '../trainer/train-loop.ts';
import { FIXTURE_TEXT, tinyTokenizer, untrainedTinyModel } from './helpers/tiny-model.ts';

const CORPUS = new URL('./fixtures/corpora', import.meta.url).pathname;
const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
const noLog = () => {};
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trainer-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pretrainArgs(extra: string[]): ReturnType<typeof PretrainStageSchema.parse> {
  return parseFlags(['--preset=tiny', '--brown=false', `--corpus-dir=${CORPUS}`, `--tokenizer=${join(dir, 'tok.json')}`, '--batch-size=4', '--warmup-steps=2', ...extra], PretrainStageSchema);
}

describe('flags', () => {
  test('unknown, ill-typed and out-of-range flags are rejected naming the flag', () => {
    assert.throws(() => parseFlags(['--bogus=1'], SftStageSchema), (e: unknown) => e instanceof FlagError && /unknown flag --bogus/.test(e.message));
    assert.throws(() => parseFlags(['--lr=abc'], SftStageSchema), /--lr must be a number \(got 'abc'\)/);
    assert.throws(() => parseFlags(['--batch-size=0'], SftStageSchema), /--batch-size: /);
    assert.throws(() => parseFlags(['--resume=maybe'], SftStageSchema), /--resume takes true or false/);
    assert.throws(() => parseFlags(['--preset=huge'], PretrainStageSchema), /--preset: /);
    assert.throws(() => parseFlags(['stray'], SftStageSchema), /unexpected argument 'stray'/);
    const cfg = parseFlags(['--max-steps=7', '--resume'], SftStageSchema);
    assert.equal(cfg.maxSteps, 7);
    assert.equal(cfg.resume, true);
    assert.equal(cfg.lr, 1e-3);
    assert.deepEqual([...explicitKeys(['--max-steps=7', '--resume'])], ['maxSteps', 'resume']);
  });
});

describe('data for training', () => {
  test('SFT sequences train on exactly the assistant tokens and their end of turn', () => {
    const tok = tinyTokenizer();
    const messages = [
      { role: 'user' as const, content: 'how are you ?' },
      { role: 'assistant' as const, content: 'fine , thanks .' },
      { role: 'user' as const, content: 'and you ?' },
      { role: 'assistant' as const, content: 'good .' },
    ];
    const [seq] = dialogueSequences(tok, messages, 200);
    const trained = seq.ids.filter((_, i) => seq.mask[i] === 1);
    assert.deepEqual(trained, [...tok.encode('fine , thanks .'), tok.special.eot, ...tok.encode('good .'), tok.special.eot]);
    // Split to fit a small window: every piece is a valid dialogue and no assistant token is lost.
    const pieces = dialogueSequences(tok, messages, renderConversation(tok, messages.slice(0, 2)).ids.length + 1);
    assert.equal(pieces.length, 2);
    const trainedInPieces = pieces.flatMap((p) => p.ids.filter((_, i) => p.mask[i] === 1));
    assert.deepEqual(trainedInPieces, trained);
  });

  test('frequent replies ("What?" in any case or punctuation) are left out of the SFT loss but stay as context', () => {
    const tok = tinyTokenizer();
    const d = (...lines: string[]) => ({ messages: lines.map((content, i) => ({ role: i % 2 ? ('assistant' as const) : ('user' as const), content })) });
    const dialogues = [d('come here .', 'What?'), d('i saw him .', 'what ?'), d('it is late .', 'WHAT!'), d('what ?', 'the house on the hill .'), d('so ?', 'What?', 'nothing .', 'fine .')];
    const frequent = frequentReplies(dialogues, 3);
    assert.deepEqual([...frequent], ['what']); // the user's "what ?" is not counted
    const trainOn = (m: { content: string }) => !frequent.has(replyKey(m.content));
    assert.deepEqual(dialogueSequences(tok, dialogues[0]!.messages, 200, trainOn), [], 'nothing left to train on');
    const [seq] = dialogueSequences(tok, dialogues[4]!.messages, 200, trainOn);
    assert.deepEqual(seq!.ids, renderConversation(tok, dialogues[4]!.messages).ids, 'the left-out reply is still in the context');
    assert.deepEqual(seq!.ids.filter((_, i) => seq!.mask[i] === 1), [...tok.encode('fine .'), tok.special.eot]);
  });

  test('batches are a pure function of (seed, epoch, index); epochs visit windows in new orders', () => {
    const stream = packDocuments(tinyTokenizer(), FIXTURE_TEXT.split('\n').slice(0, 80));
    const a = packedSource(stream, { batchSize: 4, context: 16, seed: 3 });
    const b = packedSource(stream, { batchSize: 4, context: 16, seed: 3 });
    assert.deepEqual(a.batch(1, 2), b.batch(1, 2));
    assert.notDeepEqual(a.batch(0, 0).x, a.batch(1, 0).x);
    const batch = a.batch(0, 1);
    for (let r = 0; r < 4; r++) for (let t = 0; t + 1 < 16; t++) assert.equal(batch.y[r * 16 + t], batch.x[r * 16 + t + 1]);
    const seqs = [0, 1, 2, 3, 4].map((n) => ({ ids: [1, 2, 3].slice(0, n % 3 + 2), mask: [0, 1, 1, 1].slice(0, n % 3 + 2) }));
    const s = sequenceSource(seqs, { batchSize: 2, context: 8, seed: 1, padId: 261 });
    // Rows are padded only to the longest sequence of the batch, and padding carries no weight.
    for (let i = 0; i < s.batchesPerEpoch; i++) {
      const sb = s.batch(0, i);
      const lengths = [0, 1].map((r) => Array.from(sb.x.subarray(r * sb.cols, (r + 1) * sb.cols)).findIndex((v) => v === 261));
      assert.ok(sb.cols <= 3 && lengths.some((l) => l === -1), `batch ${i} is wider than its longest row`);
      sb.x.forEach((v, j) => {
        if (v === 261) assert.equal(sb.w[j], 0);
      });
    }
  });

  test('learning rate warms up linearly, then follows a cosine to minLr', () => {
    const s = { lr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 };
    assert.equal(learningRate(0, s), 0.1);
    assert.equal(learningRate(9, s), 1);
    assert.ok(Math.abs(learningRate(60, s) - 0.55) < 1e-9);
    assert.ok(Math.abs(learningRate(110, s) - 0.1) < 1e-9);
  });
});

describe('training stages (tiny preset, fixture corpora)', () => {
  test('the tokenizer stage trains and saves a tokenizer of the asked size', async () => {
    const r = await runTokenizerStage(parseFlags([`--corpus-dir=${CORPUS}`, '--vocab-size=400', '--brown=false', `--out=${join(dir, 'tok.json')}`], TokenizerStageSchema), noLog);
    assert.equal(r.vocabSize, 400);
    assert.equal(JSON.parse(await readFile(r.path, 'utf8')).format, 'rlhf-chat-bpe');
  });

  test('a few steps of pretraining on a fixed batch lower the loss', async () => {
    const model = await untrainedTinyModel();
    const tok = tinyTokenizer();
    const stream = packDocuments(tok, FIXTURE_TEXT.split('\n').slice(0, 30));
    const fixed = packedSource(stream, { batchSize: 4, context: 32, seed: 1 });
    const one = fixed.batch(0, 0);
    const source = { batchesPerEpoch: 1, batch: () => one };
    const loop = { epochs: 25, maxSteps: 0, batchSize: 4, lr: 5e-3, minLr: 5e-3, warmupSteps: 0, weightDecay: 0, gradClip: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, seed: 1 };
    const r = await runTraining({ stage: 'pretrain', model, tokenizer: tok, train: source, heldOut: source, loop, config: loop, out: join(dir, 'overfit'), parent: null, progress: quiet });
    assert.ok(r.eval!.loss < Math.log(tok.vocabSize) - 1.5, `loss ${r.eval!.loss} did not fall from ~${Math.log(tok.vocabSize).toFixed(2)}`);
    model.dispose();
  });

  for (const threads of [1, 2]) test(`--resume after N steps gives the same weights as an uninterrupted run of the same length (--threads=${threads})`, async () => {
    const whole = join(dir, threads === 1 ? 'whole' : `whole-${threads}`);
    const cut = join(dir, `cut-${threads}`);
    const t = `--threads=${threads}`;
    await runPretrainStage(pretrainArgs([`--out=${whole}`, '--max-steps=6', t]), new Set(), quiet, noLog);
    await runPretrainStage(pretrainArgs([`--out=${cut}`, '--max-steps=3', t]), new Set(), quiet, noLog);
    assert.equal((await readCheckpointMeta(cut)).step, 3);
    await runPretrainStage(pretrainArgs([`--out=${cut}`, '--max-steps=6', '--resume', t]), new Set(['maxSteps', 'resume', 'out', 'threads']), quiet, noLog);
    const a = await loadModel(whole);
    const b = await loadModel(cut);
    assert.equal(b.meta.step, 6);
    const wb = b.model.namedWeights();
    for (const [name, v] of a.model.namedWeights()) {
      assert.deepEqual(new Uint32Array(Float32Array.from(v.dataSync()).buffer), new Uint32Array(Float32Array.from(wb.get(name)!.dataSync()).buffer), name);
    }
    a.model.dispose();
    b.model.dispose();
    await assert.rejects(runPretrainStage(pretrainArgs([`--out=${cut}`, '--resume', '--lr=0.5']), new Set(['resume', 'lr', 'out']), quiet, noLog), /cannot change lr/);
  });

  test('SFT starts from the pretrained checkpoint and records it as parent', async () => {
    const out = join(dir, 'sft');
    const cfg = parseFlags([`--corpus-dir=${CORPUS}`, `--init=${join(dir, 'whole')}`, `--out=${out}`, '--max-steps=3', '--batch-size=4'], SftStageSchema);
    const r = await runSftStage(cfg, new Set(), quiet, noLog);
    assert.equal(r.steps, 3);
    const meta = await readCheckpointMeta(out);
    assert.equal(meta.parent, join(dir, 'whole'));
    assert.equal((meta.extra as { stage: string }).stage, 'sft');
  });

  test('a non-finite loss stops training with an error and keeps the last good checkpoint', async () => {
    const out = join(dir, 'whole');
    const before = await readFile(join(out, 'model.safetensors'));
    const { model, tokenizer, resume } = await loadModel(out, { withResume: true });
    const wte = model.namedWeights().get('wte')!;
    wte.assign(tf.fill(wte.shape, Number.NaN));
    const stream = packDocuments(tokenizer, FIXTURE_TEXT.split('\n').slice(0, 30));
    const source = packedSource(stream, { batchSize: 4, context: 32, seed: 1 });
    const loop = { epochs: 1, maxSteps: 0, batchSize: 4, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, weightDecay: 0, gradClip: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 1, seed: 1 };
    for (const { tensor } of resume!.tensors) tensor.dispose();
    await assert.rejects(
      runTraining({ stage: 'pretrain', model, tokenizer, train: source, loop, config: loop, out, parent: null, progress: quiet }),
      (e: unknown) => e instanceof NonFiniteLossError && /loss became NaN at step 1/.test(e.message),
    );
    assert.deepEqual(await readFile(join(out, 'model.safetensors')), before);
    model.dispose();
  });
});
