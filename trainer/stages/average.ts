/**
 * Stage `average`: the element-wise mean of the weights of a run's last K snapshots (the run was
 * trained with --keep-snapshots), written as a policy checkpoint without optimizer state.
 */
import { z } from 'zod';
import { saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { averageSnapshots, snapshotsDir } from '../snapshots.ts';

export const AverageStageSchema = z
  .object({
    from: z.string().min(1, { error: 'is required' }).default('.state/runs/sft').describe('the run whose <from>.snapshots/ are averaged'),
    last: z.number().int().min(1).max(100).default(3).describe('how many of the newest snapshots'),
    out: z.string().min(1, { error: 'is required' }).default('.state/runs/sft-avg'),
    json: z.boolean().default(false),
  })
  .strict();
type AverageStageConfig = z.infer<typeof AverageStageSchema>;

export async function runAverageStage(cfg: AverageStageConfig): Promise<{ out: string; steps: number[]; sha256: string }> {
  const { model, tokenizer, steps } = await averageSnapshots(cfg.from, cfg.last);
  try {
    const saved = await saveModel(cfg.out, {
      model,
      tokenizer,
      kind: 'policy',
      step: steps.at(-1)!,
      parent: cfg.from,
      extra: { stage: 'average', averaged_from: snapshotsDir(cfg.from), averaged_steps: steps },
    });
    return { out: cfg.out, steps, sha256: saved.weights.sha256 };
  } finally {
    model.dispose();
  }
}
