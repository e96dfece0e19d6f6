/**
 * Stage `ppo`: improves a policy checkpoint against a reward model (`--reward DIR`) or a reward
 * function (`--reward-module FILE`), with a frozen copy of the starting policy as the KL reference.
 * The value model starts from the reward model (trunk + head, as InstructGPT) when there is one, else
 * from the policy's trunk with a fresh head. Writes the improved policy to --out at the end.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { GPT } from '../../model/gpt/gpt.ts';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { cornellPaths, loadCornellDialogues } from '../data/index.ts';
import { PpoConfigSchema } from '../ppo/config.ts';
import { PpoTrainer, type IterationMetrics } from '../ppo/ppo-trainer.ts';
import { loadRewardCheckpoint, loadRewardModule, type RewardSource } from '../ppo/reward-source.ts';
import type { ProgressReporter } from '../progress.ts';
import { scalarModelFromTrunk } from '../reward/reward-model.ts';
import { permutation } from '../batching/batches.ts';
import { corpusDirOf, runDir, runFields } from './stage-config.ts';

export const PpoStageSchema = PpoConfigSchema.extend({
  corpusDir: runFields.corpusDir,
  out: runFields.out,
  json: runFields.json,
  policy: z.string().default('models/default/policy'),
  reward: z.string().default('').describe('reward-model checkpoint'),
  rewardModule: z.string().default('').describe('module whose default export is (prompt, reply) => number'),
  prompts: z.string().default('').describe('JSONL ({"prompt": ...} or {"messages": [...]}) or text, one prompt per line'),
}).strict();
type PpoStageConfig = z.infer<typeof PpoStageSchema>;

/** Used when neither a prompts file nor the dialogue corpus is available, so the command always runs. */
const BUILT_IN_PROMPTS = [
  'how are you ?', 'what is your name ?', 'where are you going ?', 'do you want to come with me ?', 'what happened ?',
  'tell me about yourself .', 'are you ok ?', 'what do you think ?', 'who are you ?', 'why did you do that ?',
  'can you help me ?', 'what time is it ?', 'i love you .', 'where were you last night ?', 'what do you want ?', 'good morning .',
];

async function loadPrompts(cfg: PpoStageConfig, log: (line: string) => void): Promise<ChatMessage[][]> {
  if (cfg.prompts) {
    const text = await readFile(cfg.prompts, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`--prompts ${cfg.prompts}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
    });
    const out: ChatMessage[][] = [];
    let bad = 0;
    for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
      if (!line.startsWith('{')) {
        out.push([{ role: 'user', content: line }]);
        continue;
      }
      try {
        const rec = JSON.parse(line) as { prompt?: unknown; messages?: unknown };
        if (typeof rec.prompt === 'string') out.push([{ role: 'user', content: rec.prompt }]);
        else if (Array.isArray(rec.messages)) out.push(rec.messages as ChatMessage[]);
        else bad++;
      } catch {
        bad++;
      }
    }
    if (bad) log(`--prompts: ${bad} malformed lines skipped`);
    if (out.length === 0) throw new Error(`--prompts ${cfg.prompts}: no prompts`);
    return out;
  }
  try {
    const { dialogues } = await loadCornellDialogues(cornellPaths(corpusDirOf(cfg.corpusDir)));
    const prompts = dialogues.train.filter((d) => d.offset === 0).map((d) => [d.messages[0]]);
    log(`prompts: first user turns of ${prompts.length} Cornell training dialogues`);
    return prompts;
  } catch {
    log(`prompts: no corpus found; using ${BUILT_IN_PROMPTS.length} built-in prompts`);
    return BUILT_IN_PROMPTS.map((content) => [{ role: 'user', content }]);
  }
}

export async function runPpoStage(cfg: PpoStageConfig, progress: ProgressReporter, log: (line: string) => void, onIteration?: (m: IterationMetrics) => void): Promise<{ out: string; history: IterationMetrics[] }> {
  if (Boolean(cfg.reward) === Boolean(cfg.rewardModule)) throw new Error('give exactly one of --reward DIR and --reward-module FILE');
  const out = cfg.out || runDir('ppo');
  const prompts = await loadPrompts(cfg, log);
  const { model: policy, tokenizer, meta } = await loadModel(cfg.policy, { expectKind: 'policy' });
  const reference = new GPT(policy.config);
  reference.copyWeightsFrom(policy);
  let reward: RewardSource | null = null;
  let value: GPT | null = null;
  let trainer: PpoTrainer | null = null;
  try {
    reward = cfg.reward ? await loadRewardCheckpoint(cfg.reward, tokenizer) : await loadRewardModule(cfg.rewardModule);
    value = scalarModelFromTrunk(reward.model ?? policy);
    trainer = new PpoTrainer({ policy, reference, value, reward }, tokenizer, cfg);
    log(`policy ${cfg.policy} (step ${meta.step}); reward: ${reward.describe}; ${prompts.length} prompts`);
    const order = permutation(prompts.length, cfg.seed);
    const history: IterationMetrics[] = [];
    progress.start(cfg.iterations, 0);
    for (let i = 0; i < cfg.iterations; i++) {
      const batch = Array.from({ length: cfg.batchSize }, (_, j) => prompts[order[(i * cfg.batchSize + j) % prompts.length]]);
      const m = await trainer.step(batch);
      history.push(m);
      onIteration?.(m);
      progress.step({ step: i + 1, loss: m.policy_loss, lr: cfg.lr, tokensPerSec: 0, epoch: 0 });
      progress.event('iteration', { ...m }, `iteration ${m.iteration}: reward ${m.reward_mean.toFixed(3)} kl ${m.kl.toFixed(3)} beta ${m.kl_coef.toFixed(3)} clip ${m.clip_frac.toFixed(3)} len ${m.mean_reply_len.toFixed(1)}${m.relevance === null ? '' : ` relevance ${m.relevance.toFixed(3)}`}`);
    }
    progress.stop();
    const last = history.at(-1)!;
    await saveModel(out, {
      model: policy,
      tokenizer,
      kind: 'policy',
      step: meta.step + cfg.iterations,
      parent: cfg.policy,
      metrics: { reward_mean: last.reward_mean, kl: last.kl },
      extra: { stage: 'ppo', train_config: cfg, reward: reward.describe, history },
    });
    return { out, history };
  } finally {
    trainer?.dispose();
    value?.dispose();
    reward?.dispose();
    reference.dispose();
    policy.dispose();
  }
}
