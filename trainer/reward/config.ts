/**
 * Reward-model training settings: every field has a default, a range and (where it is not obvious) a
 * line saying what it does. The `rm` stage's flags and the online runs' `rm` overrides both use this
 * schema, so a limit is stated once.
 */
import { z } from 'zod';

export const RmTrainConfigSchema = z
  .object({
    epochs: z.number().int().min(1).max(1000).default(1).describe('passes over the training pairs'),
    maxSteps: z.number().int().min(0).max(1_000_000).default(0).describe('stop after this many updates (0 = no limit)'),
    batchSize: z.number().int().min(1).max(512).default(16).describe('pairs per step'),
    lr: z.number().positive().max(1).default(3e-4).describe('peak learning rate'),
    minLr: z.number().min(0).max(1).default(3e-5).describe('learning rate at the end of the cosine'),
    warmupSteps: z.number().int().min(0).max(1_000_000).default(20),
    weightDecay: z.number().min(0).max(1).default(0.01),
    gradClip: z.number().min(0).max(1000).default(1).describe('global gradient-norm clip (0 = off)'),
    margin: z.number().min(0).max(100).default(0).describe('Bradley-Terry margin'),
    pointwiseWeight: z.number().min(0).max(100).default(1).describe('weight of the single-rating loss'),
    centeringWeight: z.number().min(0).max(100).default(0.01).describe('weight of the mean r^2 term'),
    seed: z.number().int().min(0).max(2 ** 31).default(1),
  })
  .strict();

/** The loop settings the LM stages use (no eval/checkpoint cadence: evaluation runs at the end), plus the losses' weights. */
export type RmTrainConfig = z.infer<typeof RmTrainConfigSchema>;
