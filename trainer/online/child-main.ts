/**
 * The training child process: waits for one `run` message, trains with its own tfjs engine, reports
 * progress and the result over IPC, and exits. Started by run-in-child.ts.
 */
import { initEngine } from '../../model/backend.ts';
import type { ProgressReporter } from '../progress.ts';
import type { FromChild, RunProgress, ToChild } from './child-protocol.ts';
import { runOnlineTraining, type OnlineRunPhase } from './online-run.ts';

function send(msg: FromChild): Promise<void> {
  return new Promise((resolve) => process.send!(msg, undefined, {}, () => resolve()));
}

// Each phase's share of the run's progress bar (rough: PPO dominates).
const SPAN: Record<OnlineRunPhase, [number, number]> = { 'reward model': [0, 0.3], ppo: [0.3, 0.9], gate: [0.9, 0.98], saving: [0.98, 1] };

async function run(msg: ToChild): Promise<void> {
  const { job } = msg;
  let phase: OnlineRunPhase = 'reward model';
  const at = (fraction: number) => SPAN[phase][0] + (SPAN[phase][1] - SPAN[phase][0]) * Math.min(1, Math.max(0, fraction));
  const report = (extra: Record<string, string | number>, fraction: number) => void send({ type: 'progress', metrics: { phase, progress: at(fraction), ...extra } as RunProgress });
  let total = 1;
  const progress: ProgressReporter = {
    start: (t) => (total = Math.max(1, t)),
    step: (f) => report({ rm_step: f.step, rm_loss: f.loss }, f.step / total),
    event: () => {},
    stop: () => {},
  };
  await initEngine();
  const result = await runOnlineTraining({
    ...job,
    progress,
    onPhase: (p) => {
      phase = p;
      report({}, 0);
    },
    onIteration: (m) => report({ ppo_iteration: m.iteration, ppo_reward: m.reward_mean, ppo_kl: m.kl }, m.iteration / job.config.ppo.iterations),
  });
  await send({ type: 'done', result });
}

// The parent owns the run's record: when it dies (killed trainer or server), training on is pointless
// and would leave an unpublished checkpoint behind.
process.once('disconnect', () => process.exit(1));

process.once('message', (msg: ToChild) => {
  run(msg).then(
    () => process.exit(0),
    async (err: unknown) => {
      await send({ type: 'failed', error: err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err) });
      process.exit(1);
    },
  );
});
