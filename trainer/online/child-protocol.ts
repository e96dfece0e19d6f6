/**
 * Messages between whoever owns the database (the server in embedded mode, `npm run trainer` in
 * scaled mode) and the child process that trains. The child gets everything it needs in one `run`
 * message and never opens the database: PGlite allows one connection, and a crash of the child then
 * cannot leave anything half-written there.
 */
import type { OnlineRunInputs, OnlineRunResult } from './online-run.ts';

/** One run's inputs, as plain data: runOnlineTraining's inputs without the callbacks. */
export type RunJob = Omit<OnlineRunInputs, 'progress' | 'onIteration' | 'onPhase'> & { runId: number };

export type ToChild = { type: 'run'; job: RunJob };

/** Live progress: `phase`, `progress` in [0, 1], and the latest numbers of the phase. */
export type RunProgress = { phase: string; progress: number } & Record<string, string | number>;

export type FromChild =
  | { type: 'progress'; metrics: RunProgress }
  | { type: 'done'; result: OnlineRunResult }
  | { type: 'failed'; error: string };
