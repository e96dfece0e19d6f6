/**
 * Data-parallel training on one machine: wasm runs one thread per engine, so a step's batch is split
 * by rows across this thread and `workers - 1` gradient workers (each with its own engine and model
 * replica, on its own core). Each step sends the current weights and a shard to every worker,
 * computes this thread's shard meanwhile, then combines the shards' gradients weighted by their
 * token counts (the exact gradient of the whole batch's mean loss), clips and applies the optimizer
 * here. Weights and gradients cross threads as Float32Arrays (~5 MB each for the small preset), which
 * costs milliseconds against a step of about a second.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Worker } from 'node:worker_threads';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { Batch } from '../batching/batches.ts';
import { clipByGlobalNorm, type AdamW } from '../optim/adamw.ts';
import type { StepResult } from '../train-step.ts';
import { shardBatch } from './batch-shards.ts';
import type { FromGradWorker, GradWorkerData, ToGradWorker } from './messages.ts';
import { shardLossAndGrads } from './shard-grads.ts';

const ENTRY = new URL('../../model/worker-entry.mjs', import.meta.url);
const MODULE = new URL('./grad-worker.ts', import.meta.url).href;

class GradWorker {
  private pending: { resolve: (m: { loss: number; grads: Float32Array[] }) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: FromGradWorker) => {
      const p = this.pending;
      this.pending = null;
      if (msg.type === 'grads') p?.resolve(msg);
      else if (msg.type === 'failed') p?.reject(new Error(`gradient worker: ${msg.error}`));
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.pending?.reject(err);
      this.pending = null;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`gradient worker exited with code ${code}`)));
  }

  static start(model: GPT): Promise<GradWorker> {
    const worker = new Worker(ENTRY, { workerData: { module: MODULE, config: model.config } satisfies GradWorkerData });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (msg: FromGradWorker) => {
        worker.off('error', reject);
        if (msg.type === 'ready') resolve(new GradWorker(worker));
        else reject(new Error(`gradient worker did not start: ${JSON.stringify(msg)}`));
      });
    });
  }

  grads(weights: Float32Array[], batch: Batch): Promise<{ loss: number; grads: Float32Array[] }> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage({ type: 'grads', weights, batch } satisfies ToGradWorker);
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class DataParallel {
  private constructor(
    private readonly model: GPT,
    private readonly vars: tf.Variable[],
    private readonly workers: GradWorker[],
  ) {}

  /** `threads` in all, this one included; 1 means no workers (plain steps). */
  static async start(model: GPT, threads: number): Promise<DataParallel> {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new RangeError(`threads must be an integer in [1, 64], got ${threads}`);
    const workers = await Promise.all(Array.from({ length: threads - 1 }, () => GradWorker.start(model)));
    return new DataParallel(model, model.trainableVariables(), workers);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  async step(optimizer: AdamW, batch: Batch, lr: number, gradClip: number): Promise<StepResult> {
    const shards = shardBatch(batch, this.threads);
    const weights = this.workers.length > 0 ? this.vars.map((v) => v.dataSync() as Float32Array) : [];
    const remote = shards.slice(1).map((s, i) => this.workers[i].grads(weights, s));
    const local = shardLossAndGrads(this.model, this.vars, shards[0]);
    let results: { loss: number; grads: Float32Array[] }[];
    try {
      results = await Promise.all(remote);
    } catch (err) {
      tf.dispose([local.loss, ...Object.values(local.grads)]);
      throw err;
    }
    const total = shards.reduce((n, s) => n + s.tokens, 0);
    const [loss, norm] = tf.tidy(() => {
      // Each shard's loss is its own token mean: weight it by its share of the batch's tokens.
      const share = (s: Batch) => (total > 0 ? s.tokens / total : 1 / shards.length);
      const combined: tf.NamedTensorMap = {};
      this.vars.forEach((v, i) => {
        let g = tf.mul(local.grads[v.name], share(shards[0]));
        results.forEach((r, k) => (g = tf.add(g, tf.mul(tf.tensor(r.grads[i], v.shape, 'float32'), share(shards[k + 1])))));
        combined[v.name] = g;
      });
      const meanLoss = results.reduce((acc, r, k) => tf.add(acc, r.loss * share(shards[k + 1])), tf.mul(local.loss, share(shards[0])));
      const clipped = clipByGlobalNorm(combined, gradClip);
      optimizer.apply(clipped.grads, lr);
      return [meanLoss as tf.Scalar, clipped.norm];
    });
    tf.dispose([local.loss, ...Object.values(local.grads)]);
    const [l, n] = await Promise.all([loss.data(), norm.data()]);
    tf.dispose([loss, norm]);
    return { loss: l[0], gradNorm: n[0] };
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
