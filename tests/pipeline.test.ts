/**
 * The offline pipeline (trainer/pipeline.sh) as a user runs it, shrunk by its settings to a tiny
 * model on the fixture corpora: it runs end to end (policy, reward model, EVAL.md), and a run
 * killed mid-stage (SIGKILL to its whole process group, in pretraining, in SFT and in distillation)
 * and continued with --resume gives the same weights as the run that was never interrupted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PRETRAIN_STEPS = 60;
const SFT_STEPS = 40;
const DISTILL_STEPS = 40;
const TINY = {
  CORPUS_DIR: join(ROOT, 'tests/fixtures/corpora'),
  PRESET: 'tiny',
  VOCAB_SIZE: '512',
  BROWN: 'false',
  PRETRAIN_STEPS: String(PRETRAIN_STEPS),
  SFT_STEPS: String(SFT_STEPS),
  CHECKPOINT_EVERY: '10',
  AVERAGE_LAST: '2',
  RM_STEPS: '10',
  DISTILL_PROMPTS: '64',
  DISTILL_STEPS: String(DISTILL_STEPS),
  EVAL_PROMPTS: '4',
  EVAL_MAX_TOKENS: '500',
  THREADS: '1',
};

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; log: string }>;
}

/** Starts the pipeline in its own process group with the tiny settings, STATE_DIR and OUT under `dir`. */
function startPipeline(dir: string, args: string[] = [], env: Record<string, string> = {}): Run {
  const child = spawn('bash', ['trainer/pipeline.sh', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...TINY, STATE_DIR: join(dir, 'state'), OUT: join(dir, 'out'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; log: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, log }));
  });
  return { child, done };
}

async function runPipeline(dir: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = await startPipeline(dir, args, env).done;
  assert.equal(r.code, 0, `pipeline ${args.join(' ')} failed:\n${r.log.slice(-3000)}`);
  return r;
}

const runs = (dir: string) => join(dir, 'state', 'runs');

async function checkpointStep(ckpt: string): Promise<number | null> {
  try {
    return (JSON.parse(await readFile(join(ckpt, 'meta.json'), 'utf8')) as { step: number }).step;
  } catch {
    return null;
  }
}

/**
 * Kills the whole process group as soon as `ckpt` holds a checkpoint of a step before `total` and
 * its stage is not done; returns the step it was killed after.
 */
async function killMidStage(run: Run, ckpt: string, doneMarker: string, total: number): Promise<number> {
  let exited = false;
  void run.done.then(() => (exited = true));
  for (;;) {
    if (exited) assert.fail(`the pipeline ended before a checkpoint of ${ckpt} was seen:\n${(await run.done).log.slice(-2000)}`);
    const step = await checkpointStep(ckpt);
    if (step !== null && step < total && !existsSync(doneMarker)) {
      process.kill(-run.child.pid!, 'SIGKILL');
      const r = await run.done;
      assert.equal(r.signal, 'SIGKILL');
      return step;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function weightsSha(ckpt: string): Promise<string> {
  return (JSON.parse(await readFile(join(ckpt, 'meta.json'), 'utf8')) as { weights: { sha256: string } }).weights.sha256;
}

test('the tiny pipeline runs end to end; killed mid-pretraining, mid-SFT and mid-distillation and resumed, it gives the same weights as an uninterrupted run', { timeout: 600_000 }, async () => {
  const whole = await mkdtemp(join(tmpdir(), 'pipeline-whole-'));
  const cut = await mkdtemp(join(tmpdir(), 'pipeline-cut-'));
  try {
    // Uninterrupted, and killed + resumed, run side by side (they share nothing but the corpora).
    const wholeRun = runPipeline(whole);

    const first = startPipeline(cut);
    const pretrainStep = await killMidStage(first, join(runs(cut), 'pretrain'), join(runs(cut), '.done', 'pretrain'), PRETRAIN_STEPS);
    assert.ok(pretrainStep > 0 && pretrainStep < PRETRAIN_STEPS);

    const second = startPipeline(cut, ['--resume']);
    const sftStep = await killMidStage(second, join(runs(cut), 'sft'), join(runs(cut), '.done', 'sft'), SFT_STEPS);
    const secondLog = (await second.done).log;
    assert.match(secondLog, /tokenizer: done already/);
    assert.match(secondLog, new RegExp(`resuming from .*pretrain at step ${pretrainStep}`));

    const third = startPipeline(cut, ['--resume']);
    const distillStep = await killMidStage(third, join(runs(cut), 'distill'), join(runs(cut), '.done', 'distill'), DISTILL_STEPS);
    const thirdLog = (await third.done).log;
    assert.match(thirdLog, /pretrain: done already/);
    assert.match(thirdLog, new RegExp(`resuming from .*sft at step ${sftStep}`));

    const fourth = await runPipeline(cut, ['--resume']);
    assert.match(fourth.log, /reward: done already/);
    assert.match(fourth.log, new RegExp(`resuming from .*distill at step ${distillStep}`));
    assert.match(fourth.log, /reusing \d+ targets from .*distill\.targets\.jsonl/);
    const w = await wholeRun;
    assert.doesNotMatch(w.log, /resuming/);

    // End to end: the served policy, the reward model and the report.
    for (const dir of [whole, cut]) {
      for (const f of ['policy/meta.json', 'reward/meta.json', 'EVAL.md', 'eval-pretrain.json', 'eval-sft.json', 'eval-distill.json', 'eval-reward.json']) {
        assert.ok(existsSync(join(dir, 'out', f)), `${f} missing in ${dir}/out`);
      }
      for (const model of ['policy', 'reward']) {
        const { weights } = JSON.parse(await readFile(join(dir, 'out', model, 'meta.json'), 'utf8')) as { weights: { file: string } };
        assert.ok(existsSync(join(dir, 'out', model, weights.file)), `${model}/${weights.file} missing in ${dir}/out`);
      }
    }
    const md = await readFile(join(whole, 'out', 'EVAL.md'), 'utf8');
    assert.match(md, /top reply share/);
    assert.match(md, /## Reward model/);
    assert.match(md, /\| distilled, greedy \| /);
    const sft = JSON.parse(await readFile(join(whole, 'out', 'eval-sft.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['cornell_test_reply_ppl', 'wikitext_test_token_ppl']) assert.ok(Number.isFinite(sft[k]), `${k} in eval-sft.json`);
    assert.equal(typeof (sft.greedy as { top_reply_share: unknown }).top_reply_share, 'number');
    const avg = JSON.parse(await readFile(join(runs(whole), 'sft-avg', 'meta.json'), 'utf8')) as { extra: { averaged_steps: number[] } };
    assert.deepEqual(avg.extra.averaged_steps, [SFT_STEPS - 10, SFT_STEPS]);
    // The shipped policy is the distilled one, trained from the averaged SFT checkpoint.
    const policy = JSON.parse(await readFile(join(whole, 'out', 'policy', 'meta.json'), 'utf8')) as { step: number };
    assert.equal(policy.step, DISTILL_STEPS);
    assert.equal(await weightsSha(join(whole, 'out', 'policy')), await weightsSha(join(runs(whole), 'distill')));

    // Bit-exact continuation, stage by stage.
    for (const ckpt of ['state/runs/pretrain', 'state/runs/sft', 'state/runs/sft-avg', 'out/reward', 'state/runs/distill', 'out/policy']) {
      assert.equal(await weightsSha(join(cut, ckpt)), await weightsSha(join(whole, ckpt)), `${ckpt} differs between the resumed and the uninterrupted run`);
    }
  } finally {
    await rm(whole, { recursive: true, force: true });
    await rm(cut, { recursive: true, force: true });
  }
});

test('--resume is refused without a run to continue and with other settings than the run had', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pipeline-refuse-'));
  try {
    let r = await startPipeline(dir, ['--resume']).done;
    assert.equal(r.code, 2);
    assert.match(r.log, /--resume: no run to continue/);
    // A run that stops at once (no such corpus): its settings are recorded before the first step.
    r = await startPipeline(dir, [], { CORPUS_DIR: join(dir, 'no-corpora') }).done;
    assert.notEqual(r.code, 0);
    r = await startPipeline(dir, ['--resume'], { CORPUS_DIR: join(dir, 'no-corpora'), SFT_STEPS: '41' }).done;
    assert.equal(r.code, 2);
    assert.match(r.log, /--resume with other settings than the run .*\n.*SFT_STEPS=40\n.*SFT_STEPS=41/);
    r = await startPipeline(dir, ['--bogus']).done;
    assert.equal(r.code, 2);
    assert.match(r.log, /unknown argument '--bogus'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
