/**
 * The training loop shared by pretraining and SFT: real epochs over deterministic batches, AdamW with
 * warm-up + cosine decay and gradient clipping, periodic held-out evaluation, atomic checkpoints
 * every N steps and at the end (with optimizer moments and the data position, so `--resume`
 * continues exactly), and a hard stop on a non-finite loss that keeps the last good checkpoint.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ResumeState } from '../model/checkpoint/index.ts';
import type { GPT } from '../model/gpt/gpt.ts';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import type { BatchSource } from './batching/batches.ts';
import { AdamW } from './optim/adamw.ts';
import { learningRate } from './optim/schedule.ts';
import type { ProgressReporter } from './progress.ts';
import { evaluate, trainStep } from './train-step.ts';
import { DataParallel } from './parallel/data-parallel.ts';
import { clearSnapshots, saveSnapshot } from './snapshots.ts';

/** The optimisation settings every LM stage shares (each field is a CLI flag). */
export interface LoopConfig {
  epochs: number;
  /** Stop after this many updates even if epochs remain; 0 = no limit. */
  maxSteps: number;
  /** Length of the learning-rate schedule in updates; 0 or unset = all epochs. */
  scheduleSteps?: number;
  batchSize: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  /** Evaluate every N updates (0 = only at the end) on `evalBatches` held-out batches. */
  evalEvery: number;
  evalBatches: number;
  /** Checkpoint every N updates (0 = only at the end). */
  checkpointEvery: number;
  seed: number;
  /** Data-parallel threads (engines), this one included; 1 or unset: plain steps. */
  threads?: number;
  /** Also keep the weights of the last N checkpoints as snapshots (see snapshots.ts); 0 or unset: none. */
  keepSnapshots?: number;
}

interface TrainState {
  stage: string;
  step: number;
  epoch: number;
  index: number;
  /** The resolved stage config; a resume must use the same one. */
  config: Record<string, unknown>;
  evals: { step: number; loss: number; ppl: number }[];
}

export class NonFiniteLossError extends Error {
  override readonly name = 'NonFiniteLossError';
}

interface TrainRun {
  stage: string;
  model: GPT;
  tokenizer: Tokenizer;
  train: BatchSource;
  heldOut?: BatchSource;
  loop: LoopConfig;
  /** The whole resolved stage config, saved in every checkpoint. */
  config: Record<string, unknown>;
  out: string;
  parent: string | null;
  resume?: ResumeState;
  progress: ProgressReporter;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  eval?: { loss: number; ppl: number };
  evals: TrainState['evals'];
}

/** The keys whose values differ between two resolved configs (a resume with other settings is refused). */
function configDiff(a: Record<string, unknown>, b: Record<string, unknown>, ignore: string[]): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !ignore.includes(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

export async function runTraining(run: TrainRun): Promise<TrainResult> {
  const { model, loop, progress } = run;
  const named = model.namedWeights();
  const vars: tf.Variable[] = [...named.values()];
  const optimizer = new AdamW(named, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: loop.weightDecay });
  const perEpoch = run.train.batchesPerEpoch;
  const total = Math.min(loop.maxSteps > 0 ? loop.maxSteps : Infinity, loop.epochs * perEpoch);
  let state: TrainState = { stage: run.stage, step: 0, epoch: 0, index: 0, config: run.config, evals: [] };

  if (run.resume) {
    const saved = run.resume.state as TrainState;
    if (saved.stage !== run.stage) throw new Error(`cannot resume: the checkpoint is from stage '${saved.stage}', not '${run.stage}'`);
    const diff = configDiff(saved.config, run.config, ['resume', 'json', 'out', 'corpusDir', 'maxSteps', 'epochs', 'threads', 'keepSnapshots']);
    if (diff.length > 0) throw new Error(`cannot resume with different settings: ${diff.map((k) => `${k} (was ${JSON.stringify(saved.config[k])}, now ${JSON.stringify(run.config[k])})`).join(', ')}`);
    optimizer.restore(run.resume.tensors, saved.step);
    for (const { tensor } of run.resume.tensors) tensor.dispose();
    state = { ...saved, config: run.config };
  }

  // The schedule spans all epochs (or --schedule-steps, for a budget in updates); --max-steps only
  // stops early, so a run cut short and resumed follows the same learning rates as one that was
  // never interrupted.
  const schedule = { lr: loop.lr, minLr: loop.minLr, warmupSteps: loop.warmupSteps, totalSteps: (loop.scheduleSteps ?? 0) > 0 ? loop.scheduleSteps! : loop.epochs * perEpoch };
  const save = async () => {
    // The snapshot first: killed between the two, the resumed run redoes this step and writes the
    // same snapshot again, so the snapshots match an uninterrupted run's.
    if ((loop.keepSnapshots ?? 0) > 0) {
      await saveSnapshot(run.out, loop.keepSnapshots!, { model, tokenizer: run.tokenizer, kind: 'policy', step: state.step, parent: run.out, extra: { stage: run.stage } });
    }
    const resume: ResumeState = { optimizerName: 'adamw', tensors: optimizer.stateTensors(), state };
    const last = state.evals.at(-1);
    await saveModel(run.out, {
      model,
      tokenizer: run.tokenizer,
      kind: 'policy',
      step: state.step,
      parent: run.parent,
      metrics: last ? { eval_loss: last.loss, eval_ppl: last.ppl } : {},
      extra: { stage: run.stage, train_config: run.config },
      resume,
    });
    progress.event('checkpoint', { step: state.step, dir: run.out }, `checkpoint step ${state.step} -> ${run.out}`);
  };
  const runEval = async () => {
    if (!run.heldOut) return undefined;
    const r = await evaluate(model, run.heldOut, loop.evalBatches);
    state.evals.push({ step: state.step, loss: r.loss, ppl: r.ppl });
    progress.event('eval', { step: state.step, loss: r.loss, ppl: r.ppl, tokens: r.tokens }, `eval step ${state.step}: loss ${r.loss.toFixed(4)} ppl ${r.ppl.toFixed(2)} (${r.tokens} tokens)`);
    return r;
  };

  // A fresh run into an --out used before must not inherit that run's snapshots.
  if (!run.resume) await clearSnapshots(run.out);

  let finalLoss = Number.NaN;
  const parallel = (loop.threads ?? 1) > 1 ? await DataParallel.start(model, loop.threads!) : null;
  progress.start(total, state.step);
  try {
    while (state.step < total) {
      const batch = run.train.batch(state.epoch, state.index);
      const lr = learningRate(state.step, schedule);
      const t0 = performance.now();
      const { loss } = parallel ? await parallel.step(optimizer, batch, lr, loop.gradClip) : await trainStep(model, optimizer, vars, batch, lr, loop.gradClip);
      if (!Number.isFinite(loss)) {
        throw new NonFiniteLossError(`loss became ${loss} at step ${state.step + 1}; stopped, the last checkpoint in ${run.out} (if any) is from before it`);
      }
      finalLoss = loss;
      state.step += 1;
      state.index += 1;
      if (state.index === perEpoch) {
        state.epoch += 1;
        state.index = 0;
      }
      progress.step({ step: state.step, loss, lr, tokensPerSec: (batch.rows * batch.cols) / ((performance.now() - t0) / 1000), epoch: state.epoch });
      if (loop.evalEvery > 0 && state.step % loop.evalEvery === 0 && state.step < total) await runEval();
      if (loop.checkpointEvery > 0 && state.step % loop.checkpointEvery === 0 && state.step < total) await save();
    }
    const finalEval = await runEval();
    await save();
    return { steps: state.step, finalLoss, eval: finalEval, evals: state.evals };
  } finally {
    progress.stop();
    optimizer.dispose();
    await parallel?.dispose();
  }
}
