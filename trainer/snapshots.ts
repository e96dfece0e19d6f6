/**
 * Weight snapshots of a training run and their average.
 *
 * A stage run with `--keep-snapshots=K` writes, next to its checkpoint `<out>`, the weights (no
 * optimizer state) of each of its last K checkpoints to `<out>.snapshots/step-<step>`, each written
 * atomically like any checkpoint. They survive a kill and a `--resume` like the checkpoint does.
 * Averaging the last few (a cheap relative of Polyak / stochastic weight averaging) smooths the
 * noise of the final steps; the stage `average` writes the mean of the last K as a checkpoint.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../model/gpt/gpt.ts';
import { loadModel, saveModel, type SaveModelInput } from '../model/checkpoint/gpt-checkpoint.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';

const SNAPSHOT = /^step-(\d+)$/;

export function snapshotsDir(out: string): string {
  return `${out}.snapshots`;
}

/** Snapshot directories of a run, oldest first. */
export async function listSnapshots(out: string): Promise<{ step: number; dir: string }[]> {
  const root = snapshotsDir(out);
  const names = await readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names
    .map((n) => SNAPSHOT.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(root, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** Saves this step's weights as a snapshot and removes all but the newest `keep`. */
export async function saveSnapshot(out: string, keep: number, input: SaveModelInput & { step: number }): Promise<void> {
  await saveModel(join(snapshotsDir(out), `step-${String(input.step).padStart(8, '0')}`), input);
  // A snapshot of a later step than this one can only be left over from a run that was not resumed
  // from here (a fresh run into the same --out): it is not part of this run.
  const all = await listSnapshots(out);
  const stale = all.filter((s) => s.step > input.step);
  const mine = all.filter((s) => s.step <= input.step);
  for (const s of [...stale, ...mine.slice(0, Math.max(0, mine.length - keep))]) await rm(s.dir, { recursive: true, force: true });
}

/** Removes every snapshot of a run (a fresh run into the same --out starts with none). */
export async function clearSnapshots(out: string): Promise<void> {
  await rm(snapshotsDir(out), { recursive: true, force: true });
}

interface AveragedModel {
  model: GPT;
  tokenizer: Tokenizer;
  steps: number[];
}

/**
 * The element-wise mean of the weights of the last `last` snapshots of `out`. All must share the
 * config and tokenizer (they come from one run; checked anyway).
 */
export async function averageSnapshots(out: string, last: number): Promise<AveragedModel> {
  const picked = (await listSnapshots(out)).slice(-last);
  if (picked.length === 0) throw new Error(`no snapshots in ${snapshotsDir(out)} (train with --keep-snapshots=N)`);
  const first = await loadModel(picked[0].dir, { expectKind: 'policy' });
  const target = first.model.namedWeights();
  try {
    // Running sum in the first model's variables: sum_k w_k, then divided by K.
    for (const s of picked.slice(1)) {
      const next = await loadModel(s.dir, { expectKind: 'policy' });
      try {
        if (next.tokenizer.hash !== first.tokenizer.hash) throw new Error(`${s.dir} has another tokenizer than ${picked[0].dir}`);
        if (JSON.stringify(next.model.config) !== JSON.stringify(first.model.config)) throw new Error(`${s.dir} has another model config than ${picked[0].dir}`);
        const theirs = next.model.namedWeights();
        for (const [name, v] of target) v.assign(tf.tidy(() => v.add(theirs.get(name)!)));
      } finally {
        next.model.dispose();
      }
    }
    const k = picked.length;
    for (const v of target.values()) v.assign(tf.tidy(() => v.div(k)));
    return { model: first.model, tokenizer: first.tokenizer, steps: picked.map((s) => s.step) };
  } catch (err) {
    first.model.dispose();
    throw err;
  }
}
