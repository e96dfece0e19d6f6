/**
 * Stage `export`: copies a trained checkpoint to where it is served from (e.g. models/default/policy),
 * without the optimizer state (a third of the size, and nothing a server needs). Verified on load,
 * written atomically.
 */
import { z } from 'zod';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';

export const ExportStageSchema = z
  .object({
    from: z.string().min(1, { error: 'is required' }).default('.state/runs/sft'),
    out: z.string().min(1, { error: 'is required' }).default('models/default/policy'),
    json: z.boolean().default(false),
  })
  .strict();
type ExportStageConfig = z.infer<typeof ExportStageSchema>;

export async function runExportStage(cfg: ExportStageConfig): Promise<{ out: string; step: number; sha256: string }> {
  const { model, tokenizer, meta } = await loadModel(cfg.from);
  try {
    const saved = await saveModel(cfg.out, {
      model,
      tokenizer,
      kind: meta.kind,
      step: meta.step,
      parent: meta.parent,
      metrics: meta.metrics,
      extra: { ...(meta.extra ?? {}), exported_from: cfg.from },
    });
    return { out: cfg.out, step: saved.step, sha256: saved.weights.sha256 };
  } finally {
    model.dispose();
  }
}
