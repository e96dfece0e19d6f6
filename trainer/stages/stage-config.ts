/** What every stage's config is made of: the loop flags, where it reads and writes, and a resumed run's config. */
import { join } from 'node:path';
import { z } from 'zod';
import { stateDir } from '../../model/checkpoint/default-checkpoint.ts';
import { checkpointHasResume } from '../../model/checkpoint/index.ts';
import { loadModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { resolveCorpusDir } from '../data/index.ts';
import type { LoopConfig } from '../train-loop.ts';

/** Where a stage writes by default: `$STATE_DIR/runs/<stage>`. */
export function runDir(stage: string): string {
  return join(stateDir(), 'runs', stage);
}

/** zod fields of the loop settings with this stage's defaults. */
export function loopFields(d: LoopConfig) {
  const posInt = z.number().int().min(0);
  return {
    epochs: z.number().int().min(1).max(1000).default(d.epochs).describe('passes over the training data'),
    maxSteps: posInt.default(d.maxSteps).describe('stop after this many updates (0 = no limit)'),
    scheduleSteps: posInt.default(d.scheduleSteps ?? 0).describe('length of the cosine learning-rate schedule in updates (0 = all epochs); with --max-steps the same: a budget in updates'),
    batchSize: z.number().int().min(1).max(512).default(d.batchSize),
    lr: z.number().positive().max(1).default(d.lr).describe('peak learning rate'),
    minLr: z.number().min(0).max(1).default(d.minLr).describe('learning rate at the end of the cosine'),
    warmupSteps: posInt.default(d.warmupSteps),
    weightDecay: z.number().min(0).max(1).default(d.weightDecay),
    gradClip: z.number().min(0).default(d.gradClip).describe('global gradient-norm clip (0 = off)'),
    evalEvery: posInt.default(d.evalEvery).describe('evaluate every N updates (0 = at the end only)'),
    evalBatches: z.number().int().min(1).default(d.evalBatches),
    checkpointEvery: posInt.default(d.checkpointEvery).describe('checkpoint every N updates (0 = at the end only)'),
    seed: posInt.default(d.seed),
    threads: z.number().int().min(1).max(64).default(d.threads ?? 1).describe('data-parallel threads: each step\'s batch is split across this many engines, one per core (wasm runs one thread per engine)'),
    keepSnapshots: posInt.default(d.keepSnapshots ?? 0).describe('also keep the weights of the last N checkpoints in <out>.snapshots/ (for `average`)'),
  };
}

export function pickLoop(c: LoopConfig): LoopConfig {
  const { epochs, maxSteps, scheduleSteps, batchSize, lr, minLr, warmupSteps, weightDecay, gradClip, evalEvery, evalBatches, checkpointEvery, seed, threads, keepSnapshots } = c;
  return { epochs, maxSteps, scheduleSteps, batchSize, lr, minLr, warmupSteps, weightDecay, gradClip, evalEvery, evalBatches, checkpointEvery, seed, threads, keepSnapshots };
}

/** Common flags: corpus dir, output, resume, JSON progress. */
export const runFields = {
  corpusDir: z.string().default('').describe('corpus directory (default: $CORPUS_DIR, else ./corpora)'),
  out: z.string().default('').describe('output checkpoint directory (default: $STATE_DIR/runs/<stage>)'),
  resume: z.boolean().default(false).describe('continue the run saved in --out exactly where it stopped'),
  json: z.boolean().default(false).describe('progress as JSON lines on stdout'),
};

export function corpusDirOf(flag: string): string {
  return resolveCorpusDir({ flag: flag || undefined });
}

/** Settings a resumed run may change: where it reads and writes, how it reports, and how long it runs. */
const RESUME_MAY_CHANGE = ['resume', 'json', 'out', 'corpusDir', 'maxSteps', 'epochs', 'keepSnapshots'];

/**
 * The config of a resumed run: the saved one, with the flags given now laid over it. A flag that
 * would change how the run trains (learning rate, batch, seed, ...) is refused: the continuation
 * would no longer be the run that was started.
 */
export function resumedConfig<T extends Record<string, unknown>>(cfg: T, explicit: Set<string>, saved: unknown): T {
  const base = (saved as { config?: Record<string, unknown> } | undefined)?.config;
  if (!base) throw new Error('--resume: the checkpoint has no saved training config');
  const changed = [...explicit].filter((k) => !RESUME_MAY_CHANGE.includes(k) && k in base && JSON.stringify(base[k]) !== JSON.stringify(cfg[k]));
  if (changed.length > 0) {
    throw new Error(`--resume: cannot change ${changed.map((k) => `${k} (was ${JSON.stringify(base[k])}, now ${JSON.stringify(cfg[k])})`).join(', ')}`);
  }
  const merged: Record<string, unknown> = { ...base };
  for (const k of explicit) if (k in cfg) merged[k] = cfg[k];
  return merged as T;
}

/**
 * `--resume` of a training stage: the checkpoint saved in `out` with its optimizer state and data
 * position, and the config it was started with (flags given now laid over it, see resumedConfig).
 */
export async function loadResumedRun<T extends Record<string, unknown>>(out: string, given: T, explicit: Set<string>, log: (line: string) => void) {
  if (!(await checkpointHasResume(out).catch(() => false))) throw new Error(`--resume: no resumable checkpoint in ${out}`);
  const loaded = await loadModel(out, { withResume: true });
  const cfg = resumedConfig(given, explicit, loaded.resume?.state);
  log(`resuming from ${out} at step ${(loaded.resume?.state as { step?: number })?.step}`);
  return { loaded, cfg };
}
