/**
 * The offline pipeline's later commands as a user runs them, as child processes from the repo root on
 * tiny real inputs: `npm run train -- rm | ppo | export` from the tiny trained policy and the corpus
 * fixtures, `npm run eval` of a checkpoint, and `trainer/eval-report.ts` over eval's JSON. Checked for
 * exit code, the JSON or markdown they print, the checkpoints they write, and their usage errors
 * (exit 2 with a message naming the flag).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readCheckpointMeta } from '../model/checkpoint/index.ts';
import { runTs, without, type Ran } from './helpers/run-child.ts';
import { trainedTinyCheckpoint } from './helpers/tiny-model.ts';
import { RELEVANCE_WEIGHTS } from '../trainer/reward/relevance-weight.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CORPORA = join(ROOT, 'tests/fixtures/corpora');
const LIMIT_MS = 180_000;

/** `node --import tsx <script> ...args` in the repo root; never rejects on a non-zero exit. */
const runTool = (script: string, args: string[]) =>
  runTs(script, args, { env: without('CHECKPOINT', 'STATE_DIR', 'CORPUS_DIR', 'DATABASE_URL', 'TFJS_BACKEND'), limitMs: LIMIT_MS });

const train = (args: string[]) => runTool('trainer/cli.ts', args);

/** Every stdout line parsed as JSON, after checking the exit code. */
function jsonLines(r: Ran): Record<string, any>[] {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr.slice(-3000)}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

const probability = (x: unknown, what: string) => assert.ok(typeof x === 'number' && x >= 0 && x <= 1, `${what} = ${x}`);
const positive = (x: unknown, what: string) => assert.ok(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what} = ${x}`);

let dir: string;
let policy: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'train-cli-'));
  policy = await trainedTinyCheckpoint();
});
after(() => rm(dir, { recursive: true, force: true }));

describe('npm run train: rm, ppo, export', { timeout: 4 * LIMIT_MS }, () => {
  let rmOut: string;
  let rmDone: Record<string, any>;
  let ppoOut: string;

  test('rm: pairs from a JSONL file and bootstrapped from the Cornell fixture; a reward checkpoint and one JSON line', async () => {
    const pairsFile = join(dir, 'pairs.jsonl');
    const pairs = ['how are you ?', 'where is the river ?', 'who won the game ?', 'what year was it ?'].map((prompt, i) =>
      JSON.stringify({ prompt, chosen: ['fine , thanks .', 'by the city .', 'the team did .', 'it was 1990 .'][i], rejected: 'the the the the' }),
    );
    await writeFile(pairsFile, [...pairs, 'not json', ''].join('\n'));
    rmOut = join(dir, 'rm');
    const r = await train(['rm', `--policy=${policy}`, `--pairs=${pairsFile}`, '--bootstrap-from-corpus', `--corpus-dir=${CORPORA}`, '--max-pairs=40', '--max-steps=3', '--batch-size=4', '--warmup-steps=1', `--out=${rmOut}`, '--json']);
    const lines = jsonLines(r);
    rmDone = lines.at(-1)!;
    assert.deepEqual(Object.keys(rmDone).sort(), [
      'eval', 'eval_by_kind', 'eval_by_kind_head_only', 'eval_head_only', 'event', 'out', 'relevance_fit', 'relevance_weight', 'reward_mean', 'reward_std', 'stage', 'steps',
    ]);
    assert.deepEqual([rmDone.stage, rmDone.event, rmDone.steps, rmDone.out], ['rm', 'done', 3, rmOut]);
    assert.ok(Number.isFinite(rmDone.reward_mean), `reward_mean ${rmDone.reward_mean}`);
    positive(rmDone.reward_std, 'reward_std');
    assert.deepEqual(Object.keys(rmDone.eval).sort(), ['bootstrap', 'trl'], 'held-out accuracy per source');
    for (const [source, e] of Object.entries<any>(rmDone.eval)) {
      probability(e.accuracy, `${source} accuracy`);
      positive(e.pairs, `${source} pairs`);
    }
    // The bootstrap pairs again, by how the rejected reply was made; the file's pairs have no kind.
    const kinds = Object.entries<any>(rmDone.eval_by_kind);
    assert.ok(kinds.length > 0 && kinds.every(([k]) => /^bootstrap\/(other|repeated|empty|truncated)$/.test(k)), JSON.stringify(rmDone.eval_by_kind));
    assert.equal(kinds.reduce((a, [, e]) => a + e.pairs, 0), rmDone.eval.bootstrap.pairs);
    assert.match(r.stderr, /pairs\.jsonl: 4 pairs, 1 malformed lines skipped/);
    assert.match(r.stderr, /bootstrap: \d+ pairs from \d+ training dialogues/);
    // The relevance weight: fitted on training pairs, one accuracy per weight tried, the chosen one the best.
    const fit = rmDone.relevance_fit as { pairs: number; accuracy: Record<string, number> };
    assert.deepEqual(Object.keys(fit.accuracy).map(Number).sort((a, b) => a - b), [...RELEVANCE_WEIGHTS]);
    positive(fit.pairs, 'relevance_fit.pairs');
    assert.equal(fit.accuracy[String(rmDone.relevance_weight)], Math.max(...Object.values(fit.accuracy)), JSON.stringify(rmDone));
    assert.match(r.stderr, /relevance weight \d/);
    // The head's own figures beside them; with a weight of 0 the two are the same.
    assert.deepEqual(Object.keys(rmDone.eval_head_only).sort(), ['bootstrap', 'trl']);
    if (rmDone.relevance_weight === 0) assert.deepEqual(rmDone.eval, rmDone.eval_head_only);
    const meta = await readCheckpointMeta(rmOut);
    assert.deepEqual([meta.kind, meta.step, meta.parent], ['reward', 3, policy]);
    assert.equal((meta.extra as { relevance_weight: number }).relevance_weight, rmDone.relevance_weight);
  });

  test('rm --relevance-weight=0: the reward is the head alone, nothing fitted', async () => {
    const out = join(dir, 'rm-head-only');
    const r = await train(['rm', `--policy=${policy}`, '--bootstrap-from-corpus', `--corpus-dir=${CORPORA}`, '--max-pairs=20', '--max-steps=1', '--batch-size=4', '--warmup-steps=1', '--relevance-weight=0', `--out=${out}`, '--json']);
    const done = jsonLines(r).at(-1)!;
    assert.equal(done.relevance_weight, 0);
    assert.equal(done.relevance_fit, null);
    assert.deepEqual(done.eval, done.eval_head_only);
  });

  test('ppo: one JSON object per iteration on stdout, and the improved policy written', async () => {
    ppoOut = join(dir, 'ppo');
    const r = await train(['ppo', `--policy=${policy}`, `--reward=${rmOut}`, `--corpus-dir=${CORPORA}`, '--iterations=2', '--batch-size=4', '--mini-batch-size=4', '--ppo-epochs=1', '--max-new-tokens=4', `--out=${ppoOut}`, '--json']);
    const lines = jsonLines(r);
    assert.deepEqual(lines.map((m) => m.iteration), [1, 2]);
    for (const m of lines) {
      for (const k of ['reward_mean', 'kl', 'kl_coef', 'entropy', 'policy_loss', 'value_loss', 'mean_reply_len']) assert.ok(Number.isFinite(m[k]), `iteration ${m.iteration} ${k} = ${m[k]}`);
      probability(m.clip_frac, 'clip_frac');
      probability(m.ended_share, 'ended_share');
    }
    assert.match(r.stderr, /prompts: first user turns of \d+ Cornell training dialogues/);
    assert.match(r.stderr, /done: 2 iterations/);
    const meta = await readCheckpointMeta(ppoOut);
    const start = await readCheckpointMeta(policy);
    assert.deepEqual([meta.kind, meta.step, meta.parent], ['policy', start.step + 2, policy]);
    assert.equal((meta.extra as { history: unknown[] }).history.length, 2);
  });

  test('export: the policy copied without its optimizer state, verified and atomic', async () => {
    const out = join(dir, 'exported');
    const [done] = jsonLines(await train(['export', `--from=${ppoOut}`, `--out=${out}`, '--json']));
    const from = await readCheckpointMeta(ppoOut);
    const meta = await readCheckpointMeta(out);
    assert.deepEqual(done, { stage: 'export', event: 'done', out, step: from.step, sha256: from.weights.sha256 });
    assert.deepEqual([meta.kind, meta.step, meta.weights.sha256], ['policy', from.step, from.weights.sha256]);
    assert.equal((meta.extra as { exported_from: string }).exported_from, ppoOut);
    const missing = await train(['export', `--from=${join(dir, 'nothing-here')}`, `--out=${join(dir, 'never')}`]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /nothing-here/);
  });

  test('usage errors exit 2 naming the stage or flag', async () => {
    const cases: [string[], RegExp][] = [
      [['rlhf'], /unknown stage 'rlhf'; stages: tokenizer, pretrain, sft, distill, rm, ppo, export/],
      [['rm', '--max-stepz=3'], /unknown flag --max-stepz; known: .*--max-steps/],
      [['rm', '--relevance-weight=-1'], /--relevance-weight: expected 'auto' or a number in \[0, 100\]/],
      [['ppo', '--iterations=0'], /--iterations: /],
      [['ppo', '--mini-batch-size=many'], /--mini-batch-size must be a number \(got 'many'\)/],
      [['export', '--json=maybe'], /--json takes true or false \(got 'maybe'\)/],
      [[], /usage: npm run train -- <stage>/],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const r = await train(args);
        assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr.slice(-2000)}`);
        assert.match(r.stderr, message);
        assert.equal(r.stdout, '');
      }),
    );
  });
});

describe('npm run eval and the evaluation report', { timeout: 3 * LIMIT_MS }, () => {
  const evalArgs = () => [`--checkpoint=${policy}`, `--corpus-dir=${CORPORA}`, '--max-tokens=200', '--prompts=3', '--max-new-tokens=4', '--beam-width=2'];
  let report: Record<string, any>;

  test('eval --json: perplexities, reply statistics and samples on the last stdout line', async () => {
    const r = await runTool('trainer/eval-cli.ts', [...evalArgs(), '--json']);
    report = jsonLines(r).at(-1)!;
    assert.equal(report.checkpoint, policy);
    assert.equal(report.step, (await readCheckpointMeta(policy)).step);
    for (const k of ['cornell_test_reply_ppl', 'wikitext_test_token_ppl', 'wikitext_test_word_ppl', 'seconds']) positive(report[k], k);
    for (const k of ['greedy', 'beam_search']) {
      for (const s of ['distinct_1', 'distinct_2', 'repeated_3gram_share', 'empty_share']) probability(report[k][s], `${k}.${s}`);
      assert.ok(report[k].mean_len >= 0 && report[k].mean_len <= 4, `${k}.mean_len ${report[k].mean_len}`);
    }
    assert.equal(report.details.prompts, 3);
    assert.ok(report.samples.length >= 1 && report.samples.length <= 3);
    for (const s of report.samples) for (const k of ['prompt', 'greedy', 'beam_search']) assert.equal(typeof s[k], 'string');
  });

  test('eval without --json prints the markdown tables', async () => {
    const r = await runTool('trainer/eval-cli.ts', evalArgs());
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stdout, new RegExp(`^\\| ${policy.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\| value \\|`));
    assert.match(r.stdout, /\| Cornell test reply perplexity \| \d+\.\d{3} \|/);
    assert.match(r.stdout, /\| greedy \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
    assert.match(r.stdout, /\| beam_search \| /);
  });

  test('eval: a bad flag exits 2 naming it; a missing checkpoint exits 1 naming the path', async () => {
    const [flag, range, missing] = await Promise.all([
      runTool('trainer/eval-cli.ts', ['--promts=3']),
      runTool('trainer/eval-cli.ts', [`--checkpoint=${policy}`, '--beam-width=17']),
      runTool('trainer/eval-cli.ts', [`--checkpoint=${join(dir, 'no-such-model')}`]),
    ]);
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /eval: unknown flag --promts; known: .*--prompts/);
    assert.equal(range.code, 2, range.stderr);
    assert.match(range.stderr, /eval: --beam-width: /);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /eval: .*no-such-model/);
  });

  test('eval-report: the pretrained, fine-tuned and distilled reports side by side, and the reward model', async () => {
    const pre = join(dir, 'pretrain.json');
    const sft = join(dir, 'sft.json');
    const distill = join(dir, 'distill.json');
    const reward = join(dir, 'reward.json');
    await writeFile(pre, JSON.stringify(report));
    await writeFile(sft, JSON.stringify({ ...report, step: 99, cornell_test_reply_ppl: 12.5 }));
    await writeFile(distill, JSON.stringify({ ...report, step: 120, cornell_test_reply_ppl: 13.25, samples: [{ prompt: 'who?', greedy: 'me.', beam_search: 'you.' }] }));
    await writeFile(reward, JSON.stringify({ steps: 3, eval: { bootstrap: { accuracy: 0.75, margin: 0.4, pairs: 8 } }, reward_mean: 0.1, reward_std: 1.2 }));
    const r = await runTool('trainer/eval-report.ts', ['--pretrain', pre, '--sft', sft, '--distill', distill, '--reward', reward]);
    assert.equal(r.code, 0, r.stderr);
    const md = r.stdout;
    assert.match(md, /^# Evaluation of the default model\n/);
    assert.match(md, new RegExp(`pretrained checkpoint: step ${report.step}; SFT checkpoint: step 99; distilled checkpoint: step 120\\.`));
    assert.ok(md.includes(`| Cornell test reply perplexity | ${report.cornell_test_reply_ppl.toFixed(2)} | 12.50 | 13.25 |`), md);
    assert.match(md, /\| SFT, beam search \| /);
    assert.match(md, /\| distilled, greedy \| /);
    // The samples are the shipped (last) model's.
    assert.match(md, /## Sample replies of the distilled model to held-out prompts\n\n\| prompt \| greedy \| beam search \|\n\| --- \| --- \| --- \|\n\| who\? \| me\. \| you\. \|\n\n/);

    const two = await runTool('trainer/eval-report.ts', ['--pretrain', pre, '--sft', sft]);
    assert.equal(two.code, 0, two.stderr);
    assert.ok(two.stdout.includes(`| Cornell test reply perplexity | ${report.cornell_test_reply_ppl.toFixed(2)} | 12.50 |\n`), two.stdout);
    assert.match(two.stdout, /## Sample replies of the SFT model/);
    const lines = md.split('\n');
    const samplesAt = lines.indexOf('| prompt | greedy | beam search |') + 2;
    assert.equal(lines.slice(samplesAt).findIndex((l) => l === ''), 1, 'one row per sample of the shipped model');
    assert.match(md, /## Reward model\n\nTrained for 3 steps .* reward mean 0\.10, std 1\.20/);
    assert.match(md, /\| bootstrap \| 8 \| 75\.0% \| 0\.40 \|/);

    const usage = await runTool('trainer/eval-report.ts', ['--pretrain', pre]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: tsx trainer\/eval-report\.ts --pretrain P\.json --sft S\.json/);
  });
});
