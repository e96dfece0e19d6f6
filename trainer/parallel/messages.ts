/**
 * Messages between the training thread and a gradient worker of data-parallel training. Weights and
 * gradients travel as Float32Arrays in the order of GPT.namedWeights() (names carry per-instance
 * prefixes, the order does not change).
 */
import type { GPTConfig } from '../../model/gpt/config.ts';
import type { Batch } from '../batching/batches.ts';

export interface GradWorkerData {
  module: string;
  config: GPTConfig;
}

export type ToGradWorker = { type: 'grads'; weights: Float32Array[]; batch: Batch };

export type FromGradWorker =
  | { type: 'ready' }
  | { type: 'grads'; loss: number; grads: Float32Array[] }
  | { type: 'failed'; error: string };
