/**
 * Messages between whoever owns the database (the server in embedded mode, `npm run trainer` in
 * scaled mode) and the child process that trains. The child gets everything it needs in one `run`
 * message and never opens the database: PGlite allows one connection, and a crash of the child then
 * cannot leave anything half-written there.
 */
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import type { PreferencePair, RatedReply } from '../reward/pairs.ts';
import type { OnlineRunConfig, OnlineRunResult } from './online-run.ts';

/** One run's inputs, as plain data. */
export interface RunJob {
  runId: number;
  policyDir: string;
  referenceDir: string;
  rewardDir: string | null;
  pairs: PreferencePair[];
  ratings: RatedReply[];
  heldOutPairs: PreferencePair[];
  prompts: ChatMessage[][];
  gatePrompts: ChatMessage[][];
  gateDialogues: ChatMessage[][];
  outDir: string;
  config: OnlineRunConfig;
}

export type ToChild = { type: 'run'; job: RunJob };

/** Live progress: `phase`, `progress` in [0, 1], and the latest numbers of the phase. */
export type RunProgress = { phase: string; progress: number } & Record<string, string | number>;

export type FromChild =
  | { type: 'progress'; metrics: RunProgress }
  | { type: 'done'; result: OnlineRunResult }
  | { type: 'failed'; error: string };
