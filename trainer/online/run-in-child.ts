/**
 * Runs one online training job in a child process with its own tfjs engine, so a run never holds the
 * serving thread (wasm runs on one thread) and a crash or a kill takes only the child down. The
 * promise settles with the child's result, or rejects when it reports a failure, exits without a
 * result, or `signal` aborts it (the child is killed).
 */
import { fork } from 'node:child_process';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FromChild, RunJob, RunProgress, ToChild } from './child-protocol.ts';
import type { OnlineRunResult } from './online-run.ts';

const CHILD = fileURLToPath(new URL('./child-main.ts', import.meta.url));
const CHILD_NICENESS = 19;

interface RunInChildOptions {
  onProgress?: (metrics: RunProgress) => void;
  /** The child's stderr, line by line (its tfjs and progress chatter). */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

class TrainingChildError extends Error {
  override readonly name = 'TrainingChildError';
}

export function runInChild(job: RunJob, opts: RunInChildOptions = {}): Promise<OnlineRunResult> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    // Serving comes first: on a shared machine the scheduler gives the server's threads the CPU
    // before the training child (best effort; some systems refuse to change priorities).
    try {
      if (child.pid !== undefined) setPriority(child.pid, CHILD_NICENESS);
    } catch {
      // keep the default priority
    }
    let settled = false;
    let outcome: { result: OnlineRunResult } | { error: string } | null = null;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      child.kill('SIGKILL');
      settle(() => reject(new TrainingChildError(`the run was stopped: ${String(opts.signal?.reason ?? 'aborted')}`)));
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on('line', (line) => opts.onLog?.(line));
    child.on('message', (msg: FromChild) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.metrics);
      else if (msg.type === 'done') outcome = { result: msg.result };
      else outcome = { error: msg.error };
    });
    child.on('error', (err) => settle(() => reject(new TrainingChildError(`the training process could not run: ${err.message}`))));
    child.on('exit', (code, signal) => {
      settle(() => {
        if (outcome && 'result' in outcome) resolve(outcome.result);
        else if (outcome) reject(new TrainingChildError(outcome.error));
        else reject(new TrainingChildError(`the training process exited without a result (${signal ? `signal ${signal}` : `code ${code}`})`));
      });
    });
    child.send({ type: 'run', job } satisfies ToChild);
  });
}
