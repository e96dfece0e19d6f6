/**
 * Stage `rm`: the reward model, initialised from a policy checkpoint's trunk, trained on preference
 * pairs from JSONL files (TRL or HH-RLHF format) and/or bootstrap pairs from the Cornell training
 * split. A fixed share of every source is held out; `--eval-pairs` files are held out whole (e.g.
 * HH-RLHF helpful-base test). Saved as a checkpoint of kind `reward` with the reward mean/std and
 * the per-source held-out accuracy.
 *
 * The reward is the scalar head plus a relevance term (relevance-weight.ts) whose weight is fitted
 * on training pairs after the head is trained, with the policy the trunk came from as the language
 * model; the held-out figures are those of the reward so defined, with the head's alone beside them.
 */
import { z } from 'zod';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { cornellPaths, loadCornellDialogues } from '../data/index.ts';
import type { ProgressReporter } from '../progress.ts';
import { bootstrapPairs, readPairsJsonl, type PreferencePair } from '../reward/pairs.ts';
import { scalarModelFromTrunk } from '../reward/reward-model.ts';
import { RmTrainConfigSchema } from '../reward/config.ts';
import { pairRelevance, combineScores, fitRelevanceWeight, type PairScores } from '../reward/relevance-weight.ts';
import { scorePairs, tallyPairs, trainRewardModel, type RmTrainResult, type SourceEval } from '../reward/rm-train.ts';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
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
    relevanceWeight: z
      .string()
      .default('auto')
      .refine((v) => v === 'auto' || (v.trim() !== '' && Number(v) >= 0 && Number(v) <= 100), { message: "expected 'auto' or a number in [0, 100]" })
      .describe('weight of the relevance term in the reward: auto (fitted on training pairs), or a number (0: the head alone)'),
    relevanceFitPairs: z.number().int().min(10).max(100000).default(1000).describe('training pairs the relevance weight is fitted on'),
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

export async function runRmStage(cfg: RmStageConfig, progress: ProgressReporter, log: (line: string) => void): Promise<RmStageResult> {
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
    const rel = await relevanceTerm(cfg, rm, tokenizer, train, heldOut, r.heldOutScores, log);
    const result: RmStageResult = { ...r, evalsHeadOnly: r.evals, evalsByKindHeadOnly: r.evalsByKind, ...rel, out };
    const metrics: Record<string, number> = {};
    for (const [source, e] of Object.entries(result.evals)) metrics[`accuracy/${source}`] = e.accuracy;
    await saveModel(out, {
      model: rm,
      tokenizer,
      kind: 'reward',
      step: r.steps,
      parent: cfg.policy,
      metrics,
      extra: {
        stage: 'rm',
        train_config: cfg,
        reward_mean: r.rewardMean,
        reward_std: r.rewardStd,
        relevance_weight: result.relevanceWeight,
        relevance_fit: result.relevanceFit,
        eval: result.evals,
        eval_by_kind: result.evalsByKind,
        eval_head_only: result.evalsHeadOnly,
        eval_by_kind_head_only: result.evalsByKindHeadOnly,
      },
    });
    return result;
  } finally {
    rm.dispose();
  }
}

export interface RmStageResult extends RmTrainResult {
  out: string;
  /** Weight of the relevance term in the reward; 0 when the reward is the head alone. */
  relevanceWeight: number;
  /** Accuracy on the fitting pairs per weight tried; null when the weight was given. */
  relevanceFit: { pairs: number; accuracy: Record<string, number> } | null;
  /** The held-out figures of the head alone (`evals` are those of head + weight x relevance). */
  evalsHeadOnly: Record<string, SourceEval>;
  evalsByKindHeadOnly: Record<string, SourceEval>;
}

/** Fits (or takes) the relevance weight, and the held-out figures of the reward with it. */
async function relevanceTerm(
  cfg: RmStageConfig,
  rm: GPT,
  tokenizer: Tokenizer,
  train: readonly PreferencePair[],
  heldOut: readonly PreferencePair[],
  /** The head's scores of `heldOut`, from training's own evaluation. */
  heldOutHead: PairScores,
  log: (line: string) => void,
): Promise<Pick<RmStageResult, 'relevanceWeight' | 'relevanceFit'> & { evals?: Record<string, SourceEval>; evalsByKind?: Record<string, SourceEval> }> {
  let weight = cfg.relevanceWeight === 'auto' ? undefined : Number(cfg.relevanceWeight);
  if (weight === 0) return { relevanceWeight: 0, relevanceFit: null };
  const { model: lm } = await loadModel(cfg.policy, { expectKind: 'policy' });
  try {
    let relevanceFit: RmStageResult['relevanceFit'] = null;
    if (weight === undefined) {
      // Spread over the training pairs, so that every source and kind is represented.
      const every = Math.max(1, Math.floor(train.length / cfg.relevanceFitPairs));
      const fitPairs = train.filter((_, i) => i % every === 0).slice(0, cfg.relevanceFitPairs);
      const fit = fitRelevanceWeight(await scorePairs(rm, tokenizer, fitPairs), await pairRelevance(lm, tokenizer, fitPairs));
      weight = fit.weight;
      relevanceFit = { pairs: fitPairs.length, accuracy: fit.accuracy };
      log(`relevance weight ${weight} (accuracy on ${fitPairs.length} training pairs per weight: ${Object.entries(fit.accuracy).sort(([a], [b]) => Number(a) - Number(b)).map(([w, a]) => `${w}: ${(100 * a).toFixed(1)}%`).join(', ')})`);
    }
    if (weight === 0 || heldOut.length === 0) return { relevanceWeight: weight, relevanceFit };
    const combined = combineScores(heldOutHead, await pairRelevance(lm, tokenizer, heldOut), weight);
    const t = tallyPairs(heldOut, combined);
    return { relevanceWeight: weight, relevanceFit, evals: t.bySource, evalsByKind: t.byKind };
  } finally {
    lm.dispose();
  }
}
