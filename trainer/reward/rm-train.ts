/**
 * Reward-model training: Bradley-Terry on pairs + pointwise loss on single ratings + centering, with
 * AdamW, warm-up + cosine and clipping; per-source held-out accuracy and margin; the reward mean/std
 * over the training replies is stored with the model so PPO can normalise scores.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
import { permutation } from '../batching/batches.ts';
import { AdamW, clipByGlobalNorm } from '../optim/adamw.ts';
import { learningRate } from '../optim/schedule.ts';
import type { ProgressReporter } from '../progress.ts';
import { padRight } from '../batching/padding.ts';
import type { RmTrainConfig } from './config.ts';
import { bradleyTerryLoss, centeringLoss, pointwiseLoss } from './losses.ts';
import type { PreferencePair, RatedReply } from './pairs.ts';
import { exchangeIds, lastTokenScores, scoreSequences } from './reward-model.ts';

export interface SourceEval {
  accuracy: number;
  margin: number;
  pairs: number;
}

export interface RmTrainResult {
  steps: number;
  finalLoss: number;
  evals: Record<string, SourceEval>;
  /** Bootstrap pairs per rejection kind ("bootstrap/other", ...); empty without bootstrap pairs. */
  evalsByKind: Record<string, SourceEval>;
  rewardMean: number;
  rewardStd: number;
  /** The trained model's scores of each held-out pair (for figures of a reward built on them). */
  heldOutScores: { chosen: Float32Array; rejected: Float32Array };
}

/** Held-out accuracy (share of pairs where chosen scores higher) and mean margin, per source. */
export async function evaluatePairs(rm: GPT, tok: Tokenizer, pairs: readonly PreferencePair[]): Promise<Record<string, SourceEval>> {
  return (await evaluatePairsDetailed(rm, tok, pairs)).bySource;
}

/** The reward model's scores of each pair's chosen and rejected reply. */
export async function scorePairs(rm: GPT, tok: Tokenizer, pairs: readonly PreferencePair[]): Promise<{ chosen: Float32Array; rejected: Float32Array }> {
  const T = rm.config.context;
  return {
    chosen: await scoreSequences(rm, pairs.map((p) => exchangeIds(tok, p.prompt, p.chosen, T)), tok.special.pad),
    rejected: await scoreSequences(rm, pairs.map((p) => exchangeIds(tok, p.prompt, p.rejected, T)), tok.special.pad),
  };
}

/**
 * Accuracy and mean margin of the given scores per source, and for bootstrap pairs per rejection
 * kind ("bootstrap/other", ...): the easy kinds (empty, repeated, truncated) can carry the overall
 * figure while the one that needs the prompt (another conversation's reply) sits at chance.
 */
export function tallyPairs(pairs: readonly PreferencePair[], scores: { chosen: ArrayLike<number>; rejected: ArrayLike<number> }): { bySource: Record<string, SourceEval>; byKind: Record<string, SourceEval> } {
  const { chosen, rejected } = scores;
  const tally = (group: (p: PreferencePair) => string | null): Record<string, SourceEval> => {
    const sums = new Map<string, { right: number; margin: number; pairs: number }>();
    pairs.forEach((p, i) => {
      const key = group(p);
      if (key === null) return;
      const s = sums.get(key) ?? { right: 0, margin: 0, pairs: 0 };
      s.right += chosen[i]! > rejected[i]! ? 1 : 0;
      s.margin += chosen[i]! - rejected[i]!;
      s.pairs += 1;
      sums.set(key, s);
    });
    return Object.fromEntries([...sums].map(([key, s]) => [key, { accuracy: s.right / s.pairs, margin: s.margin / s.pairs, pairs: s.pairs }]));
  };
  return { bySource: tally((p) => p.source), byKind: tally((p) => (p.kind ? `${p.source}/${p.kind}` : null)) };
}

/** evaluatePairs, plus the bootstrap pairs' figures per rejection kind (tallyPairs). */
export async function evaluatePairsDetailed(rm: GPT, tok: Tokenizer, pairs: readonly PreferencePair[]): Promise<{ bySource: Record<string, SourceEval>; byKind: Record<string, SourceEval> }> {
  return tallyPairs(pairs, await scorePairs(rm, tok, pairs));
}

export async function trainRewardModel(args: {
  rm: GPT;
  tokenizer: Tokenizer;
  pairs: PreferencePair[];
  ratings?: RatedReply[];
  heldOut: PreferencePair[];
  /** Loss weight per source (e.g. user pairs above bootstrap ones); 1 when absent. */
  sourceWeights?: Record<string, number>;
  cfg: RmTrainConfig;
  progress: ProgressReporter;
}): Promise<RmTrainResult> {
  const { rm, tokenizer: tok, pairs, cfg, progress } = args;
  const ratings = args.ratings ?? [];
  if (pairs.length === 0 && ratings.length === 0) throw new Error('no preference pairs or ratings to train on');
  const T = rm.config.context;
  const pad = tok.special.pad;
  const named = rm.namedWeights();
  const vars = [...named.values()];
  const optimizer = new AdamW(named, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: cfg.weightDecay });
  const B = cfg.batchSize;
  const perEpoch = Math.max(1, Math.ceil(pairs.length / B));
  const total = Math.min(cfg.maxSteps > 0 ? cfg.maxSteps : Infinity, cfg.epochs * perEpoch);
  const schedule = { lr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.epochs * perEpoch };
  const ratingsPerBatch = ratings.length > 0 ? Math.max(1, Math.round((B * ratings.length) / Math.max(1, pairs.length))) : 0;
  let finalLoss = Number.NaN;
  let step = 0;
  progress.start(total, 0);
  try {
    for (let epoch = 0; step < total; epoch++) {
      const order = permutation(pairs.length, cfg.seed * 1000 + epoch);
      for (let i = 0; i < perEpoch && step < total; i++) {
        const batchPairs = Array.from(order.subarray(i * B, (i + 1) * B), (k) => pairs[k]);
        const batchRatings = Array.from({ length: ratingsPerBatch }, (_, j) => ratings[(step * ratingsPerBatch + j) % ratings.length]);
        const seqs = [
          ...batchPairs.map((p) => exchangeIds(tok, p.prompt, p.chosen, T)),
          ...batchPairs.map((p) => exchangeIds(tok, p.prompt, p.rejected, T)),
          ...batchRatings.map((r) => exchangeIds(tok, r.prompt, r.reply, T)),
        ];
        const batch = padRight(seqs, pad);
        const P = batchPairs.length;
        const weights = batchPairs.map((p) => args.sourceWeights?.[p.source] ?? 1);
        const labels = batchRatings.map((r) => r.label);
        const lr = learningRate(step, schedule);
        const t0 = performance.now();
        const loss = tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const scores = lastTokenScores(rm, batch, true); // (2P + R)
            let l = centeringLoss(scores).mul(cfg.centeringWeight) as tf.Scalar;
            if (P > 0) {
              const chosen = tf.slice(scores, 0, P) as tf.Tensor1D;
              const rejected = tf.slice(scores, P, P) as tf.Tensor1D;
              l = tf.add(l, bradleyTerryLoss(chosen, rejected, tf.tensor1d(weights), cfg.margin));
            }
            if (labels.length > 0) {
              l = tf.add(l, tf.mul(pointwiseLoss(tf.slice(scores, 2 * P) as tf.Tensor1D, tf.tensor1d(labels)), cfg.pointwiseWeight));
            }
            return l as tf.Scalar;
          }, vars);
          optimizer.apply(clipByGlobalNorm(grads, cfg.gradClip).grads, lr);
          return value;
        });
        finalLoss = (await loss.data())[0];
        loss.dispose();
        if (!Number.isFinite(finalLoss)) throw new Error(`reward-model loss became ${finalLoss} at step ${step + 1}; nothing saved`);
        step++;
        progress.step({ step, loss: finalLoss, lr, tokensPerSec: (batch.rows * batch.cols) / ((performance.now() - t0) / 1000), epoch });
      }
    }
  } finally {
    progress.stop();
    optimizer.dispose();
  }
  const heldOutScores = await scorePairs(rm, tok, args.heldOut);
  const { bySource: evals, byKind: evalsByKind } = tallyPairs(args.heldOut, heldOutScores);
  for (const [source, e] of [...Object.entries(evals), ...Object.entries(evalsByKind)]) {
    progress.event('eval', { source, ...e }, `held-out ${source}: accuracy ${(100 * e.accuracy).toFixed(1)}% margin ${e.margin.toFixed(3)} (${e.pairs} pairs)`);
  }
  // Reward statistics over (a sample of) the training replies, for normalisation in PPO.
  const sample = pairs.slice(0, 1000).flatMap((p) => [exchangeIds(tok, p.prompt, p.chosen, T), exchangeIds(tok, p.prompt, p.rejected, T)]);
  const scores = sample.length > 0 ? await scoreSequences(rm, sample, pad) : new Float32Array([0, 1]);
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / scores.length) || 1;
  return { steps: step, finalLoss, evals, evalsByKind, rewardMean: mean, rewardStd: std, heldOutScores };
}
