/**
 * Where PPO's sequence scores come from: a reward-model checkpoint (scores normalised with the mean
 * and std stored in it) or a reward function module (`default export (prompt, reply) => number`),
 * which is how users plug in programmatic rewards and how PPO is tested without a learned model.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { GPT } from '../../model/gpt/gpt.ts';
import { loadModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import type { ChatMessage, Tokenizer } from '../../model/tokenizer/index.ts';
import { exchangeIds, scoreSequences } from '../reward/reward-model.ts';

export interface RewardSource {
  describe: string;
  /** Raw scores of (prompt, reply) pairs. */
  score(prompts: ChatMessage[][], replies: string[]): Promise<number[]>;
  /** Subtracted and divided before clipping. */
  mean: number;
  std: number;
  /**
   * A reward model's relevance weight (relevance-weight.ts), in raw-score units: PPO adds this times
   * each reply's relevance under its reference model to the raw score. 0 for reward functions.
   */
  relevanceWeight: number;
  /** The reward model, when there is one (frozen; PPO checks it is left untouched). */
  model?: GPT;
  dispose(): void;
}

type RewardFunction = (prompt: string, reply: string) => number | Promise<number>;

/** The prompt as text for a reward function: the last user turn. */
function promptText(prompt: ChatMessage[]): string {
  return [...prompt].reverse().find((m) => m.role === 'user')?.content ?? '';
}

export function functionReward(fn: RewardFunction, describe: string): RewardSource {
  return {
    describe,
    mean: 0,
    std: 1,
    relevanceWeight: 0,
    async score(prompts, replies) {
      const out: number[] = [];
      for (let i = 0; i < replies.length; i++) {
        const v = await fn(promptText(prompts[i]), replies[i]);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${describe} returned ${String(v)} for reply ${i}; it must return a finite number`);
        out.push(v);
      }
      return out;
    },
    dispose() {},
  };
}

/** Loads `FILE` (.js/.mjs/.ts) and checks that its default export is a function. */
export async function loadRewardModule(file: string): Promise<RewardSource> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`--reward-module ${file}: cannot load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  if (typeof mod.default !== 'function') throw new Error(`--reward-module ${file}: the default export must be a function (prompt, reply) => number`);
  return functionReward(mod.default as RewardFunction, `reward module ${file}`);
}

/** A frozen reward model as a reward source (scores normalised by the given mean and std). */
export function modelReward(model: GPT, tokenizer: Tokenizer, mean: number, std: number, describe: string, relevanceWeight = 0): RewardSource {
  const T = model.config.context;
  return {
    describe,
    mean,
    std: std > 0 ? std : 1,
    relevanceWeight,
    model,
    async score(prompts, replies) {
      const seqs = replies.map((r, i) => exchangeIds(tokenizer, prompts[i], r, T));
      return Array.from(await scoreSequences(model, seqs, tokenizer.special.pad));
    },
    dispose() {
      model.dispose();
    },
  };
}

export async function loadRewardCheckpoint(dir: string, policyTokenizer: Tokenizer): Promise<RewardSource> {
  const { model, tokenizer, meta } = await loadModel(dir, { expectKind: 'reward' });
  if (tokenizer.hash !== policyTokenizer.hash) {
    model.dispose();
    throw new Error(`--reward ${dir}: its tokenizer differs from the policy's`);
  }
  const extra = (meta.extra ?? {}) as { reward_mean?: number; reward_std?: number; relevance_weight?: number };
  const weight = extra.relevance_weight ?? 0;
  if (!Number.isFinite(weight) || weight < 0) {
    model.dispose();
    throw new Error(`--reward ${dir}: relevance_weight in meta.json must be a number >= 0, got ${JSON.stringify(extra.relevance_weight)}`);
  }
  return modelReward(model, tokenizer, extra.reward_mean ?? 0, extra.reward_std ?? 1, `reward model ${dir}${weight > 0 ? ` + ${weight} x relevance` : ''}`, weight);
}
