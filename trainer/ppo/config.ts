/** PPO settings: every field has a default and a line saying what it does (TRL/OpenRLHF defaults). */
import { z } from 'zod';

export const PpoConfigSchema = z
  .object({
    iterations: z.number().int().min(1).default(20).describe('rollout + update rounds'),
    batchSize: z.number().int().min(1).max(512).default(16).describe('prompts (replies) per rollout'),
    miniBatchSize: z.number().int().min(1).max(512).default(8).describe('replies per gradient step'),
    ppoEpochs: z.number().int().min(1).max(32).default(4).describe('passes over each rollout batch'),
    lr: z.number().positive().max(1).default(3e-4).describe('policy learning rate (3e-4 suits the 1-5M-parameter presets)'),
    valueLr: z.number().positive().max(1).default(1e-4).describe('value-model learning rate'),
    clipRange: z.number().positive().max(1).default(0.2).describe('PPO ratio clip epsilon'),
    valueClipRange: z.number().positive().default(0.2).describe('value prediction clip around the rollout values'),
    gamma: z.number().min(0).max(1).default(1).describe('discount'),
    lam: z.number().min(0).max(1).default(0.95).describe('GAE lambda'),
    klCoef: z.number().min(0).default(0.05).describe('beta: weight of the per-token KL penalty (initial value if adaptive)'),
    klTarget: z.number().min(0).default(0).describe('adaptive KL target in nats per reply (0 = fixed beta)'),
    klHorizon: z.number().positive().default(10000).describe('adaptive KL horizon in samples'),
    klEstimator: z.enum(['k1', 'k3']).default('k1').describe('per-token KL estimator: k1 = log p - log q, k3 = (r - 1) - log r'),
    entropyCoef: z.number().min(0).default(0).describe('entropy bonus weight'),
    rewardClip: z.number().positive().default(5).describe('clip the normalised score to +-this'),
    relevanceCoef: z.number().min(0).max(10).default(0).describe('weight of the relevance bonus added to the normalised score: the reference model\'s mean per-token log-likelihood gain of the reply from its prompt over an empty prompt (relevance.ts); rewards replies that answer this prompt over ones that fit any'),
    missingEosPenalty: z.number().max(0).default(0).describe('added to the score of replies that never end their turn (<= 0)'),
    whitenAdvantages: z.boolean().default(true),
    gradClip: z.number().min(0).default(1),
    maxNewTokens: z.number().int().min(1).max(512).default(24).describe('longest reply sampled'),
    temperature: z.number().positive().max(5).default(1).describe('sampling temperature of rollouts'),
    topK: z.number().int().min(0).default(0),
    topP: z.number().positive().max(1).default(1),
    seed: z.number().int().min(0).default(1),
  })
  .strict();

export type PpoConfig = z.infer<typeof PpoConfigSchema>;
