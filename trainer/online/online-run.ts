/**
 * One online training run, from plain inputs to candidate checkpoints, with no database access (the
 * caller hands it the pairs, ratings and prompts it read, and records what it returns — so it can run
 * in a worker or a separate process, whatever owns the database connection):
 *  1. reward model: continue from the active one on all pairs and single ratings (user data weighted
 *     above bootstrap data), keep the new one only if held-out accuracy did not get worse;
 *  2. PPO from the active policy against that reward model, KL to the reference (the shipped SFT model);
 *  3. gate the candidate against the active policy (gate.ts);
 *  4. write the candidate policy (and a kept reward model) atomically under `outDir`.
 */
import { GPT } from '../../model/gpt/gpt.ts';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { sequenceSource } from '../batching/batches.ts';
import { PpoConfigSchema, type PpoConfig } from '../ppo/config.ts';
import { PpoTrainer, type IterationMetrics } from '../ppo/ppo-trainer.ts';
import { modelReward } from '../ppo/reward-source.ts';
import type { ProgressReporter } from '../progress.ts';
import type { PreferencePair, RatedReply } from '../reward/pairs.ts';
import { scalarModelFromTrunk } from '../reward/reward-model.ts';
import { RmTrainConfigSchema, type RmTrainConfig } from '../reward/config.ts';
import { evaluatePairs, trainRewardModel, type SourceEval } from '../reward/rm-train.ts';
import { dialogueSequences } from '../batching/dialogue-sequences.ts';
import { gateCandidate, type GateConfig, type GateResult } from './gate.ts';

export interface OnlineRunConfig {
  rm: RmTrainConfig;
  /** Loss weight of user pairs (sources 'siblings', 'compare') relative to bootstrap/imported ones. */
  userWeight: number;
  ppo: PpoConfig;
  gate: Partial<GateConfig>;
  /** The run fails if it takes longer than this (seconds). */
  timeBudgetSec: number;
}

export const ONLINE_RUN_DEFAULTS: OnlineRunConfig = {
  rm: RmTrainConfigSchema.parse({ epochs: 2, maxSteps: 200, lr: 1e-4, minLr: 1e-5, warmupSteps: 10 }),
  userWeight: 3,
  ppo: PpoConfigSchema.parse({ iterations: 10, batchSize: 16, miniBatchSize: 8, lr: 5e-5, maxNewTokens: 24 }),
  gate: {},
  timeBudgetSec: 1800,
};

export interface OnlineRunInputs {
  policyDir: string;
  referenceDir: string;
  /** The active reward model; null starts one from the policy's trunk. */
  rewardDir: string | null;
  pairs: PreferencePair[];
  ratings: RatedReply[];
  /** Held-out pairs deciding whether the new reward model is kept (user share + bootstrap). */
  heldOutPairs: PreferencePair[];
  /** PPO prompts: recent user prompts mixed with corpus prompts. */
  prompts: ChatMessage[][];
  /** Fixed held-out prompts and dialogues for the gate. */
  gatePrompts: ChatMessage[][];
  gateDialogues: ChatMessage[][];
  outDir: string;
  config: OnlineRunConfig;
  progress: ProgressReporter;
  /** Called after each PPO iteration (live progress for a dashboard). */
  onIteration?: (m: IterationMetrics) => void;
  /** Called as each phase begins. */
  onPhase?: (phase: OnlineRunPhase) => void;
}

export type OnlineRunPhase = 'reward model' | 'ppo' | 'gate' | 'saving';

export interface OnlineRunResult {
  reward: { kept: boolean; dir: string | null; before: Record<string, SourceEval> | null; after: Record<string, SourceEval>; mean: number; std: number };
  policy: { dir: string; gate: GateResult; ppo: IterationMetrics[] };
  seconds: number;
}

class OnlineRunError extends Error {
  override readonly name = 'OnlineRunError';
}

const USER_SOURCES = new Set(['siblings', 'compare', 'user']);

function overall(e: Record<string, SourceEval>): number {
  let right = 0;
  let n = 0;
  for (const s of Object.values(e)) {
    right += s.accuracy * s.pairs;
    n += s.pairs;
  }
  return n ? right / n : 0;
}

export async function runOnlineTraining(inp: OnlineRunInputs): Promise<OnlineRunResult> {
  const t0 = performance.now();
  const { config: cfg } = inp;
  const checkBudget = (phase: string) => {
    const spent = (performance.now() - t0) / 1000;
    if (spent > cfg.timeBudgetSec) throw new OnlineRunError(`the run exceeded its time budget of ${cfg.timeBudgetSec}s during ${phase} (${spent.toFixed(0)}s)`);
  };
  const models: GPT[] = [];
  const own = <T extends GPT>(m: T): T => {
    models.push(m);
    return m;
  };
  try {
    const { model: active, tokenizer } = await loadModel(inp.policyDir, { expectKind: 'policy' });
    own(active);

    // 1. Reward model.
    inp.onPhase?.('reward model');
    let previous: GPT | null = null;
    let before: Record<string, SourceEval> | null = null;
    if (inp.rewardDir) {
      previous = own((await loadModel(inp.rewardDir, { expectKind: 'reward' })).model);
      before = await evaluatePairs(previous, tokenizer, inp.heldOutPairs);
    }
    const rm = own(scalarModelFromTrunk(active));
    if (previous) rm.copyWeightsFrom(previous);
    const weights: Record<string, number> = {};
    for (const p of inp.pairs) weights[p.source] = USER_SOURCES.has(p.source) ? cfg.userWeight : 1;
    const trained = await trainRewardModel({ rm, tokenizer, pairs: inp.pairs, ratings: inp.ratings, heldOut: inp.heldOutPairs, sourceWeights: weights, cfg: cfg.rm, progress: inp.progress });
    const kept = !before || overall(trained.evals) >= overall(before);
    const rewardModel = kept ? rm : previous!;
    let rewardDir: string | null = null;
    if (kept) {
      rewardDir = `${inp.outDir}/reward`;
      await saveModel(rewardDir, { model: rm, tokenizer, kind: 'reward', step: trained.steps, parent: inp.rewardDir, metrics: { accuracy: overall(trained.evals) }, extra: { reward_mean: trained.rewardMean, reward_std: trained.rewardStd, eval: trained.evals } });
    }
    checkBudget('the reward model');

    // 2. PPO from the active policy.
    inp.onPhase?.('ppo');
    const candidate = own(new GPT(active.config));
    candidate.copyWeightsFrom(active);
    const reference = own((await loadModel(inp.referenceDir, { expectKind: 'policy' })).model);
    const value = own(scalarModelFromTrunk(rewardModel));
    const mean = kept ? trained.rewardMean : 0;
    const std = kept ? trained.rewardStd : 1;
    // The reward source wraps a model we own; its dispose is not called (we dispose models ourselves).
    const reward = modelReward(rewardModel, tokenizer, mean, std, 'online reward model');
    const ppo = new PpoTrainer({ policy: candidate, reference, value, reward }, tokenizer, cfg.ppo);
    const history: IterationMetrics[] = [];
    try {
      for (let i = 0; i < cfg.ppo.iterations; i++) {
        const batch = Array.from({ length: cfg.ppo.batchSize }, (_, j) => inp.prompts[(i * cfg.ppo.batchSize + j) % inp.prompts.length]);
        const m = await ppo.step(batch);
        history.push(m);
        inp.onIteration?.(m);
        checkBudget(`PPO iteration ${i + 1}`);
      }
    } finally {
      ppo.dispose();
    }

    // 3. Gate.
    inp.onPhase?.('gate');
    const heldOutSeqs = inp.gateDialogues.flatMap((d) => dialogueSequences(tokenizer, d, active.config.context + 1));
    const heldOut = sequenceSource(heldOutSeqs, { batchSize: Math.min(8, heldOutSeqs.length), context: active.config.context, seed: 1, padId: tokenizer.special.pad });
    const gate = await gateCandidate({ candidate, active, reference, tokenizer, reward, prompts: inp.gatePrompts, heldOut, config: cfg.gate });
    checkBudget('the gate');

    // 4. The candidate is written whatever the gate said: a rejected one is kept with its reasons.
    inp.onPhase?.('saving');
    const policyDir = `${inp.outDir}/policy`;
    const last = history.at(-1);
    await saveModel(policyDir, {
      model: candidate,
      tokenizer,
      kind: 'policy',
      parent: inp.policyDir,
      metrics: { gate_reward: gate.candidate.reward, gate_kl: gate.candidate.kl, ...(last ? { ppo_reward: last.reward_mean, ppo_kl: last.kl } : {}) },
      extra: { gate, ppo: history },
    });
    return {
      reward: { kept, dir: rewardDir, before, after: trained.evals, mean, std },
      policy: { dir: policyDir, gate, ppo: history },
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const m of models) m.dispose();
  }
}
