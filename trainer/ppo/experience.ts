/**
 * One rollout batch as PPO consumes it (OpenRLHF's experience.py): grouped by meaning, per-sample
 * fields as arrays of length N, per-action fields flattened to length A = total actions, with
 * `offsets[i]` the first action of sample i. An action is a reply token (the end-of-turn included).
 */
import type { ChatMessage } from '../../model/tokenizer/index.ts';

export interface Experience {
  // Per sample (N)
  prompts: ChatMessage[][];
  promptIds: number[][];
  /** Action ids of each reply, end-of-turn included when the reply ended. */
  actions: number[][];
  replies: string[];
  ended: boolean[];
  /** Score from the reward source, before normalisation. */
  rawScores: number[];
  /** Normalised, penalised and clipped score credited to the last action. */
  scores: number[];
  /** Summed per-token KL to the reference (nats). */
  sequenceKl: number[];
  offsets: number[];
  // Per action (A)
  oldLogp: Float32Array;
  refLogp: Float32Array;
  oldValues: Float32Array;
  advantages: Float32Array;
  returns: Float32Array;
}

/** Flat index range of sample i's actions. */
export function actionRange(e: Experience, i: number): [number, number] {
  return [e.offsets[i], e.offsets[i] + e.actions[i].length];
}
