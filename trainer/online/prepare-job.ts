/**
 * Turns the feedback store's state into one run's plain inputs (a RunJob): the active policy and
 * reward versions, the reference model, user pairs/ratings/prompts (collectRunData) plus bootstrap
 * pairs and corpus prompts from the shipped dialogues, and the gate's fixed held-out set.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getActiveModelVersion, getModelVersion } from '../../db/repos/model-versions.ts';
import type { Db } from '../../db/util.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { permutation } from '../batching/batches.ts';
import { bootstrapPairs } from '../reward/pairs.ts';
import type { RunJob } from './child-protocol.ts';
import { collectRunData } from './db-inputs.ts';
import type { RunSettings } from './run-config.ts';
import { shippedDialogues } from './shipped-dialogues.ts';

/** The reward model shipped next to the default policy: the first reward model when none is active. */
const SHIPPED_REWARD_DIR = fileURLToPath(new URL('../../models/default/reward', import.meta.url));

class PrepareRunError extends Error {
  override readonly name = 'PrepareRunError';
}

interface PreparedRun {
  job: RunJob;
  activePolicyVersionId: number;
  activeRewardVersionId: number | null;
  trainedPairIds: number[];
  /** What the run learns from, for the run record. */
  counts: Record<string, number>;
}

async function tokenizerHash(dir: string): Promise<string | null> {
  try {
    return (JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { tokenizer_hash?: string }).tokenizer_hash ?? null;
  } catch {
    return null;
  }
}

/** The first policy of the active one's lineage: the model the server started from (the SFT model). */
async function rootPolicyDir(db: Db, id: number): Promise<string> {
  let v = await getModelVersion(db, id);
  for (let hops = 0; v && v.parent_id !== null && hops < 10_000; hops++) {
    const parent = await getModelVersion(db, v.parent_id);
    if (!parent || parent.kind !== 'policy') break;
    v = parent;
  }
  if (!v) throw new PrepareRunError(`model version ${id} does not exist`);
  return v.checkpoint_path;
}

function mixPrompts(user: ChatMessage[][], corpus: ChatMessage[][], share: number, want: number, seed: number): ChatMessage[][] {
  if (user.length === 0) return corpus;
  const nCorpus = Math.min(corpus.length, Math.round((share / Math.max(1e-9, 1 - share)) * Math.max(user.length, want * (1 - share))));
  const pickedCorpus = Array.from(permutation(corpus.length, seed).slice(0, nCorpus), (i) => corpus[i]);
  const all = [...user, ...pickedCorpus];
  return Array.from(permutation(all.length, seed + 1), (i) => all[i]);
}

export async function prepareRunJob(db: Db, args: { runId: number; settings: RunSettings; checkpointRoot: string; reference?: string }): Promise<PreparedRun> {
  const { runId, settings } = args;
  const policy = await getActiveModelVersion(db, 'policy');
  if (!policy) throw new PrepareRunError('no policy version is active: start a server once (it registers the default model) or activate one');
  const policyTokenizer = await tokenizerHash(policy.checkpoint_path);
  const reward = await getActiveModelVersion(db, 'reward');
  let rewardDir: string | null = reward?.checkpoint_path ?? null;
  if (!rewardDir && existsSync(SHIPPED_REWARD_DIR) && policyTokenizer && (await tokenizerHash(SHIPPED_REWARD_DIR)) === policyTokenizer) rewardDir = SHIPPED_REWARD_DIR;
  const referenceDir = args.reference ?? (await rootPolicyDir(db, policy.id));

  const data = await collectRunData(db, { heldOutEvery: settings.heldOutEvery, maxPrompts: settings.maxUserPrompts });
  const shipped = await shippedDialogues();
  const asDialogues = (d: ChatMessage[][]) => d.map((messages) => ({ messages }));
  const bootTrain = settings.bootstrapPairs > 0 ? bootstrapPairs(asDialogues(shipped.train.slice(0, settings.bootstrapPairs)), runId) : [];
  // Held-out bootstrap pairs judge the reward model only when it also trains on bootstrap pairs.
  const bootHeldOut = settings.bootstrapPairs > 0 ? bootstrapPairs(asDialogues(shipped.heldOut), 1) : [];
  const corpusPrompts = shipped.train.map((d) => d.slice(0, 1));
  const prompts = mixPrompts(data.prompts, corpusPrompts, settings.corpusPromptShare, settings.ppo.batchSize * settings.ppo.iterations, runId);

  const { heldOutEvery: _h, maxUserPrompts: _m, corpusPromptShare: _c, bootstrapPairs: _b, ...config } = settings;
  return {
    job: {
      runId,
      policyDir: policy.checkpoint_path,
      referenceDir,
      rewardDir,
      pairs: [...data.pairs, ...bootTrain],
      ratings: data.ratings,
      heldOutPairs: [...data.heldOutPairs, ...bootHeldOut],
      prompts,
      gatePrompts: shipped.heldOut.map((d) => d.slice(0, 1)),
      gateDialogues: shipped.heldOut,
      outDir: join(args.checkpointRoot, `run-${runId}`),
      config,
    },
    activePolicyVersionId: policy.id,
    activeRewardVersionId: reward?.id ?? null,
    trainedPairIds: data.trainedPairIds,
    counts: {
      stored_pairs: data.pairs.length,
      held_out_user_pairs: data.heldOutPairs.length,
      bootstrap_pairs: bootTrain.length,
      ratings: data.ratings.length,
      user_prompts: data.prompts.length,
      ppo_prompts: prompts.length,
    },
  };
}
