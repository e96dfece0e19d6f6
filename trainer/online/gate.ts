/**
 * The check a candidate policy must pass before it is published: on a fixed held-out prompt set,
 * (1) mean reward under the reward model not lower than the active policy's (within a tolerance),
 * (2) KL to the reference below a bound, (3) no degeneration: the share of empty replies and of
 * replies repeating a 3-gram not above bounds, and perplexity on held-out dialogues not worse than the
 * active policy's by more than a factor. Replies are greedy, so the comparison is deterministic.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { Batcher } from '../../model/decode/batcher.ts';
import { chatPrompt } from '../../model/decode/chat-reply.ts';
import type { GenerationEvent } from '../../model/decode/decoder.ts';
import { createDecoder } from '../../model/decode/generate.ts';
import { parseDecodeOptions } from '../../model/decode/options.ts';
import type { GPT } from '../../model/gpt/gpt.ts';
import type { ChatMessage, Tokenizer } from '../../model/tokenizer/index.ts';
import type { BatchSource } from '../batching/batches.ts';
import { replyStats } from '../evaluation.ts';
import { actionBatch, actionLogProbs } from '../ppo/forward.ts';
import type { RewardSource } from '../ppo/reward-source.ts';
import { evaluate } from '../train-step.ts';

/** The gate's bounds; the online runs' `gate` overrides use this schema. */
export const GateConfigSchema = z
  .object({
    rewardTolerance: z.number().min(0).max(100).default(0.05).describe('candidate mean reward may be this much below the active one (noise allowance)'),
    maxKl: z.number().min(0).max(1e6).default(20).describe('mean summed KL to the reference per reply, nats'),
    maxEmptyShare: z.number().min(0).max(1).default(0.2).describe('share of empty replies allowed'),
    maxRepeatedShare: z.number().min(0).max(1).default(0.5).describe('share of replies repeating a 3-gram allowed'),
    maxPplRatio: z.number().min(1).max(1e6).default(1.25).describe('held-out perplexity may grow at most by this factor'),
    maxNewTokens: z.number().int().min(1).max(512).default(24).describe('longest greedy reply to a gate prompt'),
  })
  .strict();
export type GateConfig = z.infer<typeof GateConfigSchema>;

const DEGENERATION_SLACK = 0.1;

export const GATE_DEFAULTS: GateConfig = GateConfigSchema.parse({});

interface PolicyReport {
  reward: number;
  kl: number;
  emptyShare: number;
  repeatedShare: number;
  ppl: number;
}

export interface GateResult {
  passed: boolean;
  reasons: string[];
  candidate: PolicyReport;
  active: PolicyReport;
}

interface Replies {
  prompts: number[][];
  actions: number[][];
  texts: string[];
}

async function greedyReplies(model: GPT, tok: Tokenizer, prompts: ChatMessage[][], maxNewTokens: number): Promise<Replies> {
  const opts = parseDecodeOptions({ strategy: 'greedy', max_new_tokens: maxNewTokens });
  const batcher = new Batcher(model, Math.max(1, prompts.length));
  const results = await Promise.all(
    prompts.map(async (messages) => {
      const p = chatPrompt(model.config, tok, messages, opts);
      let done: Extract<GenerationEvent, { type: 'done' }> | undefined;
      await batcher.run({ prompt: p.ids, decoder: createDecoder(p.ids, opts, p.control), onEvents: (evs) => evs.forEach((e) => e.type === 'done' && (done = e)) });
      const ids = done?.ids ?? [];
      return { prompt: p.ids, actions: done?.finishReason === 'eot' ? [...ids, tok.special.eot] : ids, text: tok.decode(ids, { skipSpecial: true }) };
    }),
  );
  return { prompts: results.map((r) => r.prompt), actions: results.map((r) => r.actions), texts: results.map((r) => r.text) };
}

/** Mean over replies of sum_t (log pi(a_t) - log pi_ref(a_t)). */
async function sequenceKl(model: GPT, reference: GPT, r: Replies, padId: number): Promise<number> {
  const keep = r.actions.map((a, i) => i).filter((i) => r.actions[i].length > 0);
  if (keep.length === 0) return 0;
  const batch = actionBatch(keep.map((i) => r.prompts[i]), keep.map((i) => r.actions[i]), padId);
  const diff = tf.tidy(() => tf.sub(actionLogProbs(model, batch, 1, false).logp, actionLogProbs(reference, batch, 1, false).logp));
  const d = await diff.data();
  diff.dispose();
  let total = 0;
  for (const v of d) total += v;
  return total / r.actions.length;
}

async function report(model: GPT, reference: GPT, tok: Tokenizer, reward: RewardSource, prompts: ChatMessage[][], heldOut: BatchSource, cfg: GateConfig): Promise<PolicyReport> {
  const r = await greedyReplies(model, tok, prompts, cfg.maxNewTokens);
  const scores = await reward.score(prompts, r.texts);
  const stats = replyStats(r.texts);
  const ppl = (await evaluate(model, heldOut, heldOut.batchesPerEpoch)).ppl;
  return {
    reward: scores.reduce((a, b) => a + b, 0) / Math.max(1, scores.length),
    kl: await sequenceKl(model, reference, r, tok.special.pad),
    emptyShare: stats.empty_share,
    repeatedShare: stats.repeated_3gram_share,
    ppl,
  };
}

export async function gateCandidate(args: {
  candidate: GPT;
  active: GPT;
  reference: GPT;
  tokenizer: Tokenizer;
  reward: RewardSource;
  prompts: ChatMessage[][];
  heldOut: BatchSource;
  config?: Partial<GateConfig>;
}): Promise<GateResult> {
  const cfg = { ...GATE_DEFAULTS, ...args.config };
  const cand = await report(args.candidate, args.reference, args.tokenizer, args.reward, args.prompts, args.heldOut, cfg);
  const act = await report(args.active, args.reference, args.tokenizer, args.reward, args.prompts, args.heldOut, cfg);
  const reasons: string[] = [];
  if (cand.reward < act.reward - cfg.rewardTolerance) reasons.push(`mean reward ${cand.reward.toFixed(3)} is below the active policy's ${act.reward.toFixed(3)}`);
  if (cand.kl > cfg.maxKl) reasons.push(`KL to the reference ${cand.kl.toFixed(2)} nats exceeds ${cfg.maxKl}`);
  // Degeneration limits are absolute, but never stricter than what the active policy already does
  // (plus a little slack): a candidate is refused for getting worse, not for inheriting a weakness.
  const emptyLimit = Math.max(cfg.maxEmptyShare, act.emptyShare + DEGENERATION_SLACK);
  const repeatLimit = Math.max(cfg.maxRepeatedShare, act.repeatedShare + DEGENERATION_SLACK);
  if (cand.emptyShare > emptyLimit) reasons.push(`${(100 * cand.emptyShare).toFixed(0)}% empty replies (limit ${(100 * emptyLimit).toFixed(0)}%)`);
  if (cand.repeatedShare > repeatLimit) reasons.push(`${(100 * cand.repeatedShare).toFixed(0)}% of replies repeat a 3-gram (limit ${(100 * repeatLimit).toFixed(0)}%)`);
  if (cand.ppl > act.ppl * cfg.maxPplRatio) reasons.push(`held-out perplexity ${cand.ppl.toFixed(1)} is more than ${cfg.maxPplRatio}x the active policy's ${act.ppl.toFixed(1)}`);
  return { passed: reasons.length === 0, reasons, candidate: cand, active: act };
}
