/**
 * Training throughput of the training loop's own step (AdamW, clipping) at several data-parallel
 * thread counts, on the benchmark's batch (16 x 128 random ids): one warm-up step, then the median
 * of `runs` timed steps per count. Weights move between counts (they train), which does not change
 * the cost of a step.
 */
import os from 'node:os';
import type { GPT } from '../../model/gpt/gpt.ts';
import { AdamW } from '../../trainer/optim/adamw.ts';
import { DataParallel } from '../../trainer/parallel/data-parallel.ts';

export interface ParallelFigure {
  threads: number;
  tokens_per_s: number;
  step_s: number;
}

/** 1 and every power of two up to the machine's cores (at most 8). */
export function defaultThreadCounts(): number[] {
  const cores = Math.min(8, os.availableParallelism());
  const counts = [1];
  for (let n = 2; n <= cores; n *= 2) counts.push(n);
  if (counts.at(-1) !== cores && cores > 1) counts.push(cores);
  return counts;
}

export async function measureDataParallel(model: GPT, ids: (n: number) => number[], { runs, threads, batch = 16, seqLen = 128, log = () => {} }: { runs: number; threads: number[]; batch?: number; seqLen?: number; log?: (line: string) => void }): Promise<ParallelFigure[]> {
  const T = Math.min(seqLen, model.config.context);
  const b = { x: Int32Array.from(ids(batch * T)), y: Int32Array.from(ids(batch * T)), w: new Float32Array(batch * T).fill(1), rows: batch, cols: T, tokens: batch * T };
  const out: ParallelFigure[] = [];
  for (const n of threads) {
    const dp = await DataParallel.start(model, n);
    const optimizer = new AdamW(model.namedWeights(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    const seconds: number[] = [];
    try {
      for (let i = 0; i <= runs; i++) {
        const t0 = performance.now();
        const { loss } = await dp.step(optimizer, b, 1e-4, 1);
        const dt = (performance.now() - t0) / 1000;
        if (!Number.isFinite(loss)) throw new Error(`training loss is ${loss}`);
        if (i > 0) seconds.push(dt);
        log(`train, ${n} thread(s) ${i === 0 ? 'warm-up' : `run ${i}/${runs}`}: ${dt.toFixed(2)}s/step, ${((batch * T) / dt).toFixed(0)} tok/s`);
      }
    } finally {
      optimizer.dispose();
      await dp.dispose();
    }
    const sorted = [...seconds].sort((a, c) => a - c);
    const step = sorted[Math.floor(sorted.length / 2)];
    out.push({ threads: n, step_s: Math.round(step * 1000) / 1000, tokens_per_s: Math.round(((batch * T) / step) * 10) / 10 });
  }
  return out;
}
