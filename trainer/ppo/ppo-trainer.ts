/**
 * PPO for a chat policy (Ouyang et al. 2022; Schulman et al. 2017), with four models passed
 * explicitly: the policy (trained), a frozen reference (the starting policy), the reward (a frozen
 * reward model or a reward function), and a value model (trained). Per iteration:
 *  1. rollouts, 2. scores, 3. per-token KL to the reference, 4. per-token rewards, 5. values + GAE,
 *  6. epochs of minibatch updates, 7. metrics. A non-finite number anywhere discards the iteration
 *  and stops the run; nothing is saved.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { ChatMessage, Tokenizer } from '../../model/tokenizer/index.ts';
import { permutation } from '../batching/batches.ts';
import { AdamW, clipByGlobalNorm } from '../optim/adamw.ts';
import type { PpoConfig } from './config.ts';
import { actionRange, type Experience } from './experience.ts';
import { actionBatch, actionLogProbs, actionValues } from './forward.ts';
import { gae, tokenRewards, whiten } from './gae.ts';
import { adaptiveKl, fixedKl, type KlController } from './kl-controller.ts';
import { policyLoss, valueLoss } from './losses.ts';
import { relevanceScores } from '../reward/relevance.ts';
import type { RewardSource } from './reward-source.ts';
import { sampleReplies } from './rollout.ts';

interface PpoModels {
  policy: GPT;
  reference: GPT;
  value: GPT;
  reward: RewardSource;
}

export interface IterationMetrics {
  iteration: number;
  reward_mean: number;
  reward_std: number;
  /** Mean over replies of the summed per-token KL to the reference (nats). */
  kl: number;
  kl_coef: number;
  entropy: number;
  clip_frac: number;
  approx_kl: number;
  policy_loss: number;
  value_loss: number;
  explained_variance: number;
  /** Mean relevance (relevance.ts) of the rollout's replies, nats per token; null when no weight is given to it. */
  relevance: number | null;
  mean_reply_len: number;
  ended_share: number;
  seconds: { rollout: number; score: number; update: number };
}

class PpoError extends Error {
  override readonly name = 'PpoError';
}

function checkDistinct(m: PpoModels): void {
  const models: [string, GPT][] = [['policy', m.policy], ['reference', m.reference], ['value', m.value]];
  if (m.reward.model) models.push(['reward', m.reward.model]);
  for (let i = 0; i < models.length; i++) {
    for (let j = i + 1; j < models.length; j++) {
      if (models[i][1] === models[j][1] || models[i][1].prefix === models[j][1].prefix) {
        throw new PpoError(`the ${models[i][0]} and ${models[j][0]} models must be different objects`);
      }
    }
  }
  if (!m.value.hasScalarHead) throw new PpoError('the value model needs a scalar head');
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : 0;
}

function finite(name: string, ...xs: ArrayLike<number>[]): void {
  for (const x of xs) for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new PpoError(`${name} is not finite; the iteration is discarded and nothing is saved`);
}

export class PpoTrainer {
  private readonly policyOpt: AdamW;
  private readonly valueOpt: AdamW;
  private readonly policyVars: tf.Variable[];
  private readonly valueVars: tf.Variable[];
  readonly kl: KlController;
  private iteration = 0;

  constructor(
    private readonly models: PpoModels,
    private readonly tokenizer: Tokenizer,
    private readonly cfg: PpoConfig,
  ) {
    checkDistinct(models);
    const pw = models.policy.namedWeights();
    const vw = models.value.namedWeights();
    this.policyVars = [...pw.values()];
    this.valueVars = [...vw.values()];
    // Explicit variable lists: only the policy and value weights ever change.
    this.policyOpt = new AdamW(pw, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
    this.valueOpt = new AdamW(vw, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
    this.kl = cfg.klTarget > 0 ? adaptiveKl(cfg.klCoef, cfg.klTarget, cfg.klHorizon) : fixedKl(cfg.klCoef);
  }

  dispose(): void {
    this.policyOpt.dispose();
    this.valueOpt.dispose();
  }

  /** One PPO iteration on these prompts. */
  async step(prompts: ChatMessage[][]): Promise<IterationMetrics> {
    const { policy, reference, value, reward } = this.models;
    const cfg = this.cfg;
    const pad = this.tokenizer.special.pad;
    this.iteration += 1;

    // 1. Rollouts.
    let t0 = performance.now();
    const rollouts = await sampleReplies(policy, this.tokenizer, prompts, { ...cfg, seed: (cfg.seed * 100003 + this.iteration * 7919) >>> 0 });
    const tRollout = (performance.now() - t0) / 1000;

    // 2. Scores: normalised, penalised if the reply never ended (plus the relevance bonus below).
    t0 = performance.now();
    const replies = rollouts.map((r) => r.reply);
    const rawScores = await reward.score(prompts, replies);
    finite('a reward score', rawScores);
    const scores = rawScores.map((s, i) => (s - reward.mean) / reward.std + (rollouts[i].ended ? 0 : cfg.missingEosPenalty));

    // Log-probs of the rollout policy and the reference, and the values before each action.
    const live = rollouts.map((r, i) => i).filter((i) => rollouts[i].actions.length > 0);
    const promptIds = live.map((i) => rollouts[i].promptIds);
    const actions = live.map((i) => rollouts[i].actions);
    const batch = actionBatch(promptIds, actions, pad);
    const [oldLogpT, refLogpT, valuesT] = tf.tidy(() => [
      actionLogProbs(policy, batch, cfg.temperature, false).logp,
      actionLogProbs(reference, batch, cfg.temperature, false).logp,
      actionValues(value, batch, false),
    ]);
    const [oldLogp, refLogp, oldValues] = await Promise.all([oldLogpT.data(), refLogpT.data(), valuesT.data()]) as Float32Array[];
    tf.dispose([oldLogpT, refLogpT, valuesT]);
    finite('a log-probability or value', oldLogp, refLogp, oldValues);
    // The reward model's own relevance term (in normalised units) and the configured bonus, both
    // computed with the reference model.
    const relevanceCoef = reward.relevanceWeight / reward.std + cfg.relevanceCoef;
    let relevance: Float64Array | null = null;
    if (relevanceCoef > 0 && live.length > 0) {
      relevance = await relevanceScores(reference, this.tokenizer, actions, refLogp, cfg.temperature);
      finite('a relevance score', relevance);
      live.forEach((sample, k) => (scores[sample] += relevanceCoef * relevance![k]));
    }
    for (let i = 0; i < scores.length; i++) scores[i] = Math.max(-cfg.rewardClip, Math.min(cfg.rewardClip, scores[i]));

    // 3-5. Per-token KL, rewards, GAE.
    const offsets: number[] = [];
    let at = 0;
    for (const a of actions) {
      offsets.push(at);
      at += a.length;
    }
    const advantages = new Float64Array(at);
    const returns = new Float64Array(at);
    const sequenceKl: number[] = [];
    live.forEach((sample, k) => {
      const [s, e] = [offsets[k], offsets[k] + actions[k].length];
      const kl = new Float64Array(e - s);
      for (let t = s; t < e; t++) {
        const logRatio = oldLogp[t] - refLogp[t]; // log pi / pi_ref
        kl[t - s] = cfg.klEstimator === 'k1' ? logRatio : Math.exp(-logRatio) - 1 + logRatio;
      }
      sequenceKl.push(kl.reduce((a, b) => a + b, 0));
      const r = tokenRewards(kl, scores[sample], this.kl.value);
      const g = gae(r, Float64Array.from(oldValues.subarray(s, e)), cfg.gamma, cfg.lam);
      advantages.set(g.advantages, s);
      returns.set(g.returns, s);
    });
    const adv = cfg.whitenAdvantages ? whiten(advantages) : advantages;
    finite('an advantage or return', adv, returns);
    const exp: Experience = {
      prompts: live.map((i) => prompts[i]),
      promptIds,
      actions,
      replies: live.map((i) => replies[i]),
      ended: live.map((i) => rollouts[i].ended),
      rawScores: live.map((i) => rawScores[i]),
      scores: live.map((i) => scores[i]),
      sequenceKl,
      offsets,
      oldLogp,
      refLogp,
      oldValues,
      advantages: Float32Array.from(adv),
      returns: Float32Array.from(returns),
    };
    const tScore = (performance.now() - t0) / 1000;

    // 6. Updates.
    t0 = performance.now();
    const stats = exp.actions.length > 0 ? await this.update(exp) : { policyLoss: 0, valueLoss: 0, clipFrac: 0, approxKl: 0, entropy: 0 };
    const tUpdate = (performance.now() - t0) / 1000;

    // 7. Metrics.
    const klMean = mean(sequenceKl);
    this.kl.update(klMean, exp.actions.length);
    const varReturns = variance(exp.returns);
    const residual = Float32Array.from(exp.returns, (r, i) => r - exp.oldValues[i]);
    const metrics: IterationMetrics = {
      iteration: this.iteration,
      reward_mean: mean(rawScores),
      reward_std: Math.sqrt(variance(Float64Array.from(rawScores))),
      kl: klMean,
      kl_coef: this.kl.value,
      entropy: stats.entropy,
      clip_frac: stats.clipFrac,
      approx_kl: stats.approxKl,
      policy_loss: stats.policyLoss,
      value_loss: stats.valueLoss,
      explained_variance: varReturns > 0 ? 1 - variance(residual) / varReturns : 0,
      relevance: relevance ? mean(relevance) : null,
      mean_reply_len: mean(rollouts.map((r) => r.actions.length)),
      ended_share: mean(rollouts.map((r) => (r.ended ? 1 : 0))),
      seconds: { rollout: tRollout, score: tScore, update: tUpdate },
    };
    finite('a metric', [metrics.reward_mean, metrics.kl, metrics.policy_loss, metrics.value_loss]);
    return metrics;
  }

  private async update(exp: Experience): Promise<{ policyLoss: number; valueLoss: number; clipFrac: number; approxKl: number; entropy: number }> {
    const cfg = this.cfg;
    const n = exp.actions.length;
    const sums = { policyLoss: 0, valueLoss: 0, clipFrac: 0, approxKl: 0, entropy: 0 };
    let count = 0;
    for (let epoch = 0; epoch < cfg.ppoEpochs; epoch++) {
      const order = permutation(n, cfg.seed * 31 + this.iteration * 101 + epoch);
      for (let s = 0; s < n; s += cfg.miniBatchSize) {
        const idx = Array.from(order.subarray(s, s + cfg.miniBatchSize));
        const batch = actionBatch(idx.map((i) => exp.promptIds[i]), idx.map((i) => exp.actions[i]), this.tokenizer.special.pad);
        const pick = (src: Float32Array) => Float32Array.from(idx.flatMap((i) => Array.from(src.subarray(...actionRange(exp, i)))));
        const oldLogp = pick(exp.oldLogp);
        const advantages = pick(exp.advantages);
        const returns = pick(exp.returns);
        const oldValues = pick(exp.oldValues);
        const out = tf.tidy(() => {
          let clipFrac!: tf.Scalar;
          let approxKl!: tf.Scalar;
          let ent!: tf.Scalar;
          const p = tf.variableGrads(() => {
            // Entropy is always measured (a metric); it enters the loss only with a bonus coefficient.
            const { logp, entropy } = actionLogProbs(this.models.policy, batch, cfg.temperature, true, true);
            const l = policyLoss(logp, tf.tensor1d(oldLogp), tf.tensor1d(advantages), cfg.clipRange);
            clipFrac = tf.keep(l.clipFrac);
            approxKl = tf.keep(l.approxKl);
            ent = tf.keep(entropy ? tf.mean(entropy) : tf.scalar(0));
            return (cfg.entropyCoef > 0 ? tf.sub(l.loss, tf.mul(ent, cfg.entropyCoef)) : l.loss) as tf.Scalar;
          }, this.policyVars);
          this.policyOpt.apply(clipByGlobalNorm(p.grads, cfg.gradClip).grads, cfg.lr);
          const v = tf.variableGrads(() => valueLoss(actionValues(this.models.value, batch, true), tf.tensor1d(oldValues), tf.tensor1d(returns), cfg.valueClipRange), this.valueVars);
          this.valueOpt.apply(clipByGlobalNorm(v.grads, cfg.gradClip).grads, cfg.valueLr);
          const stacked = tf.stack([p.value, v.value, clipFrac, approxKl, ent]);
          // These were kept out of variableGrads' scope to read them; kept tensors need an explicit dispose.
          tf.dispose([clipFrac, approxKl, ent]);
          return stacked;
        });
        const [pl, vl, cf, ak, en] = await out.data();
        out.dispose();
        if (![pl, vl, cf, ak, en].every(Number.isFinite)) throw new PpoError('a PPO loss is not finite; the iteration is discarded and nothing is saved');
        sums.policyLoss += pl;
        sums.valueLoss += vl;
        sums.clipFrac += cf;
        sums.approxKl += ak;
        sums.entropy += en;
        count++;
      }
    }
    return { policyLoss: sums.policyLoss / count, valueLoss: sums.valueLoss / count, clipFrac: sums.clipFrac / count, approxKl: sums.approxKl / count, entropy: sums.entropy / count };
  }
}

function variance(x: ArrayLike<number>): number {
  const m = mean(x);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - m) ** 2;
  return x.length ? s / x.length : 0;
}
