/**
 * The pieces the training recipe is made of: the pretraining text and its held-out slice, SFT
 * batches with pretraining batches mixed in, weight snapshots and their average, and the reply
 * statistics that catch a collapsed model (top_reply_share).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../model/backend.ts';
import { loadModel } from '../model/checkpoint/gpt-checkpoint.ts';
import type { Batch, BatchSource } from '../trainer/batching/batches.ts';
import { cornellPaths, loadCornell, movieSplit } from '../trainer/data/index.ts';
import { evalJson, replyStats, type EvalReport } from '../trainer/evaluation.ts';
import { parseFlags } from '../trainer/flags.ts';
import { mixedSource } from '../trainer/batching/mixed-source.ts';
import type { ProgressReporter } from '../trainer/progress.ts';
import { listSnapshots } from '../trainer/snapshots.ts';
import { AverageStageSchema, runAverageStage } from '../trainer/stages/average.ts';
import { cornellTrainText, pretrainDocuments, wikiTrainAndHeldOut } from '../trainer/data/pretrain-text.ts';
import { PretrainStageSchema, runPretrainStage } from '../trainer/stages/pretrain.ts';
import { runSftStage, SftStageSchema } from '../trainer/stages/sft.ts';
import { runTokenizerStage, TokenizerStageSchema } from '../trainer/stages/tokenizer.ts';

const CORPUS = new URL('./fixtures/corpora', import.meta.url).pathname;
const quiet: ProgressReporter = { start() {}, step() {}, event() {}, stop() {} };
const noLog = () => {};
let dir: string;

before(async () => {
  await initEngine({ log: () => {} });
  dir = await mkdtemp(join(tmpdir(), 'recipe-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source whose batch says where it came from: x = [tag, epoch, index]. */
function tagged(tag: number, batchesPerEpoch: number): BatchSource {
  return {
    batchesPerEpoch,
    batch: (epoch, index): Batch => ({ x: Int32Array.from([tag, epoch, index]), y: new Int32Array(3), w: new Float32Array(3), rows: 1, cols: 3, tokens: 3 }),
  };
}

describe('pretraining text', () => {
  test('every 10th WikiText valid article is held out of training (train split absent), disjoint from the training text', async () => {
    const wiki = await wikiTrainAndHeldOut(CORPUS);
    // The fixture holds 5 valid articles: article 0 is held out, 1..4 train.
    assert.equal(wiki.heldOut.length, 1);
    assert.equal(wiki.train.length, 4);
    assert.match(wiki.heldOutName, /every 10th article/);
    for (const d of wiki.heldOut) assert.ok(!wiki.train.includes(d));
    const docs = await pretrainDocuments(CORPUS, { brown: false, cornell: false }, noLog);
    assert.deepEqual(docs, wiki.train);
  });

  test('Cornell text for pretraining: only training-split movies, one document per conversation, one turn per line', async () => {
    const texts = await cornellTrainText(CORPUS);
    const { conversations } = await loadCornell(cornellPaths(CORPUS));
    const train = conversations.filter((c) => movieSplit(c.movieId) === 'train');
    assert.equal(texts.length, train.length);
    assert.ok(train.length < conversations.length, 'the fixture has held-out movies');
    const heldOutLines = conversations.filter((c) => movieSplit(c.movieId) !== 'train').flatMap((c) => c.utterances.map((u) => u.text)).filter((t) => t.length > 40);
    const all = texts.join('\n');
    for (const line of heldOutLines.slice(0, 50)) assert.ok(!all.includes(line), `held-out line in the pretraining text: ${line}`);
    assert.ok(texts.every((t) => t.split('\n').length >= 2));
    const withCornell = await pretrainDocuments(CORPUS, { brown: false, cornell: true }, noLog);
    assert.equal(withCornell.length, 4 + texts.length);
  });
});

describe('mixed batches', () => {
  test('a share of pretraining batches, evenly spread; every SFT batch once per epoch; pure in (epoch, index)', () => {
    const sft = tagged(1, 30);
    const pre = tagged(2, 7);
    const mixed = mixedSource(sft, pre, 0.25);
    for (const epoch of [0, 1, 2]) {
      const batches = Array.from({ length: mixed.batchesPerEpoch }, (_, i) => Array.from(mixed.batch(epoch, i).x));
      const fromSft = batches.filter((b) => b[0] === 1);
      const fromPre = batches.filter((b) => b[0] === 2);
      assert.deepEqual(fromSft.map((b) => [b[1], b[2]]), Array.from({ length: 30 }, (_, i) => [epoch, i]));
      assert.equal(fromPre.length, mixed.batchesPerEpoch - 30);
      assert.ok(Math.abs(fromPre.length / mixed.batchesPerEpoch - 0.25) < 0.05);
      // Spread: never two pretraining batches in a row at a share below one half.
      for (let i = 1; i < batches.length; i++) assert.ok(!(batches[i][0] === 2 && batches[i - 1][0] === 2));
      assert.deepEqual(Array.from(mixed.batch(epoch, 5).x), batches[5]);
    }
    // The pretraining source continues across epochs and cycles through its own epochs.
    const seen = [0, 1, 2].flatMap((e) => Array.from({ length: mixed.batchesPerEpoch }, (_, i) => Array.from(mixed.batch(e, i).x)).filter((b) => b[0] === 2));
    assert.deepEqual(seen.slice(0, 9).map((b) => [b[1], b[2]]), [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6], [1, 0], [1, 1]]);
    assert.equal(mixedSource(sft, pre, 0), sft);
    assert.throws(() => mixedSource(sft, pre, 1), /mix share must be in \[0, 1\)/);
  });
});

describe('reply statistics', () => {
  test('top_reply_share: the share of replies equal to the most frequent one (whitespace at the ends ignored), and top_reply that reply', () => {
    const s = replyStats(["I don't know.", 'No.', " I don't know. ", 'Yes.']);
    assert.deepEqual([s.top_reply_share, s.top_reply], [0.5, "I don't know."]);
    const tied = replyStats(['a', 'b', 'c', 'd']);
    assert.deepEqual([tied.top_reply_share, tied.top_reply], [0.25, 'a']);
    assert.deepEqual([replyStats([]).top_reply_share, replyStats([]).top_reply], [0, '']);
  });

  test('eval JSON keys name the split measured', () => {
    const stats = replyStats(['x']);
    const base: EvalReport = { split: 'test', cornell_reply_ppl: 1, wikitext_token_ppl: 2, wikitext_word_ppl: 3, greedy: stats, beam_search: stats, details: {}, samples: [] };
    const t = evalJson(base);
    assert.equal(t.cornell_test_reply_ppl, 1);
    assert.equal(t.wikitext_test_token_ppl, 2);
    assert.equal(t.wikitext_test_word_ppl, 3);
    const v = evalJson({ ...base, split: 'valid' });
    assert.equal(v.cornell_valid_reply_ppl, 1);
    assert.equal(v.wikitext_heldout_token_ppl, 2);
    assert.equal(v.cornell_test_reply_ppl, undefined);
  });
});

describe('snapshots and their average', () => {
  test('SFT with pretraining batches keeps the last K checkpoints as snapshots; average = their element-wise mean', async () => {
    const tok = join(dir, 'tok.json');
    await runTokenizerStage(parseFlags([`--corpus-dir=${CORPUS}`, '--vocab-size=400', '--brown=false', `--out=${tok}`], TokenizerStageSchema), noLog);
    const pre = join(dir, 'pre');
    await runPretrainStage(parseFlags(['--preset=tiny', '--brown=false', '--cornell', `--corpus-dir=${CORPUS}`, `--tokenizer=${tok}`, '--batch-size=4', '--max-steps=2', `--out=${pre}`], PretrainStageSchema), new Set(), quiet, noLog);
    const sft = join(dir, 'sft');
    const lines: string[] = [];
    const cfg = parseFlags([`--corpus-dir=${CORPUS}`, `--init=${pre}`, `--out=${sft}`, '--max-steps=8', '--batch-size=4', '--checkpoint-every=2', '--keep-snapshots=3', '--pretrain-share=0.25'], SftStageSchema);
    await runSftStage(cfg, new Set(), quiet, (l) => lines.push(l));
    assert.ok(lines.some((l) => /mixing in pretraining batches: 25% of steps/.test(l)));
    assert.deepEqual((await listSnapshots(sft)).map((s) => s.step), [4, 6, 8]);
    assert.deepEqual(await readdir(`${sft}.snapshots`), ['step-00000004', 'step-00000006', 'step-00000008']);

    const out = join(dir, 'avg');
    const r = await runAverageStage(parseFlags([`--from=${sft}`, '--last=2', `--out=${out}`], AverageStageSchema));
    assert.deepEqual(r.steps, [6, 8]);
    const [a, b, avg] = await Promise.all([join(`${sft}.snapshots`, 'step-00000006'), join(`${sft}.snapshots`, 'step-00000008'), out].map((d) => loadModel(d)));
    const wa = a.model.namedWeights();
    const wb = b.model.namedWeights();
    for (const [name, v] of avg.model.namedWeights()) {
      const x = wa.get(name)!.dataSync();
      const y = wb.get(name)!.dataSync();
      const m = v.dataSync();
      for (let i = 0; i < m.length; i += 97) assert.ok(Math.abs(m[i] - (x[i] + y[i]) / 2) <= 1e-6 * (1 + Math.abs(m[i])), `${name}[${i}]`);
    }
    assert.deepEqual((avg.meta.extra as { averaged_steps: number[] }).averaged_steps, [6, 8]);
    for (const m of [a, b, avg]) m.model.dispose();

    // A fresh run into the same --out starts without the old run's snapshots.
    await runSftStage(parseFlags([`--corpus-dir=${CORPUS}`, `--init=${pre}`, `--out=${sft}`, '--max-steps=2', '--batch-size=4'], SftStageSchema), new Set(), quiet, noLog);
    assert.deepEqual(await listSnapshots(sft), []);
    await assert.rejects(runAverageStage(parseFlags([`--from=${sft}`, `--out=${out}`], AverageStageSchema)), /no snapshots in .*sft\.snapshots \(train with --keep-snapshots=N\)/);
  });
});
