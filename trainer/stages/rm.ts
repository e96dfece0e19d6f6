/**
 * Stage `rm`: the reward model, initialised from a policy checkpoint's trunk, trained on preference
 * pairs from JSONL files (TRL or HH-RLHF format) and/or bootstrap pairs from the Cornell training
 * split. A fixed share of every source is held out; `--eval-pairs` files are held out whole (e.g.
 * HH-RLHF helpful-base test). Saved as a checkpoint of kind `reward` with the reward mean/std and
 * the per-source held-out accuracy.
 */
import { z } from 'zod';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { cornellPaths, loadCornellDialogues } from '../data/index.ts';
import type { ProgressReporter } from '../progress.ts';
import { bootstrapPairs, readPairsJsonl, type PreferencePair } from '../reward/pairs.ts';
import { scalarModelFromTrunk } from '../reward/reward-model.ts';
import { RmTrainConfigSchema } from '../reward/config.ts';
import { trainRewardModel, type RmTrainResult } from '../reward/rm-train.ts';
import { corpusDirOf, runDir, runFields } from './stage-config.ts';

export const RmStageSchema = z
  .object({
    corpusDir: runFields.corpusDir,
    out: runFields.out,
    json: runFields.json,
    policy: z.string().default('models/default/policy').describe('policy checkpoint whose trunk starts the reward model'),
    pairs: z.string().default('').describe('comma-separated JSONL files of pairs (TRL or HH-RLHF format, .gz ok)'),
    evalPairs: z.string().default('').describe('comma-separated JSONL files used only for evaluation'),
    bootstrapFromCorpus: z.boolean().default(false).describe('add bootstrap pairs from the Cornell training split'),
    maxPairs: z.number().int().min(1).default(20000).describe('cap per source'),
    heldOutShare: z.number().min(0).max(0.5).default(0.1),
    ...RmTrainConfigSchema.shape,
  })
  .strict();
type RmStageConfig = z.infer<typeof RmStageSchema>;

/** Deterministic held-out split: every k-th pair of each source. */
function split(pairs: PreferencePair[], share: number): { train: PreferencePair[]; heldOut: PreferencePair[] } {
  if (share <= 0) return { train: pairs, heldOut: [] };
  const every = Math.max(2, Math.round(1 / share));
  return { train: pairs.filter((_, i) => i % every !== 0), heldOut: pairs.filter((_, i) => i % every === 0) };
}

export async function runRmStage(cfg: RmStageConfig, progress: ProgressReporter, log: (line: string) => void): Promise<RmTrainResult & { out: string }> {
  const out = cfg.out || runDir('rm');
  const sources: PreferencePair[][] = [];
  for (const path of cfg.pairs.split(',').filter(Boolean)) {
    const { pairs, summary } = await readPairsJsonl(path, cfg.maxPairs);
    log(`${path}: ${summary.pairs} pairs${summary.malformed ? `, ${summary.malformed} malformed lines skipped (first at ${summary.firstMalformedLines.join(', ')})` : ''}`);
    sources.push(pairs);
  }
  if (cfg.bootstrapFromCorpus) {
    const { dialogues } = await loadCornellDialogues(cornellPaths(corpusDirOf(cfg.corpusDir)), { log });
    const pairs = bootstrapPairs(dialogues.train, cfg.seed).slice(0, cfg.maxPairs);
    log(`bootstrap: ${pairs.length} pairs from ${dialogues.train.length} training dialogues`);
    sources.push(pairs);
  }
  if (sources.length === 0) throw new Error('no training pairs: give --pairs FILE.jsonl and/or --bootstrap-from-corpus');
  const train: PreferencePair[] = [];
  const heldOut: PreferencePair[] = [];
  for (const s of sources) {
    const parts = split(s, cfg.heldOutShare);
    train.push(...parts.train);
    heldOut.push(...parts.heldOut);
  }
  for (const path of cfg.evalPairs.split(',').filter(Boolean)) {
    const { pairs } = await readPairsJsonl(path, cfg.maxPairs);
    heldOut.push(...pairs.map((p) => ({ ...p, source: `${p.source}:${path.split('/').slice(-2).join('/')}` })));
  }
  const { model: policy, tokenizer } = await loadModel(cfg.policy, { expectKind: 'policy' });
  const rm = scalarModelFromTrunk(policy);
  policy.dispose();
  try {
    log(`training on ${train.length} pairs; ${heldOut.length} held out`);
    const r = await trainRewardModel({ rm, tokenizer, pairs: train, heldOut, cfg, progress });
    const metrics: Record<string, number> = {};
    for (const [source, e] of Object.entries(r.evals)) metrics[`accuracy/${source}`] = e.accuracy;
    await saveModel(out, {
      model: rm,
      tokenizer,
      kind: 'reward',
      step: r.steps,
      parent: cfg.policy,
      metrics,
      extra: { stage: 'rm', train_config: cfg, reward_mean: r.rewardMean, reward_std: r.rewardStd, eval: r.evals, eval_by_kind: r.evalsByKind },
    });
    return { ...r, out };
  } finally {
    rm.dispose();
  }
}
