/**
 * Stage `distill`: teaches the SFT policy to answer the prompt in front of it. A maximum-likelihood
 * dialogue model's most probable reply is the corpus's safest one ("I don't know."), and greedy and
 * beam search find exactly that. This stage
 *  1. answers the first user turns of Cornell training dialogues with the policy's own
 *     maximum-mutual-information replies (distill/mmi-replies.ts: likely after this prompt, unlikely
 *     after any prompt),
 *  2. keeps the share of them the reward model (head + its relevance term) scores highest, which
 *     drops the ones the anti-LM term pushed into nonsense (replies that ended their turn first),
 *  3. fine-tunes the policy on them, mixed with Cornell SFT batches (so it still predicts real replies)
 *     and pretraining batches (so it keeps its text).
 * The targets are written once to `<out>.targets.jsonl` (atomically); `--resume` reuses them and
 * continues the fine-tuning from its last checkpoint.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { loadModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { writeFileAtomically } from '../../model/checkpoint/atomic-dir.ts';
import { chatPrompt } from '../../model/decode/chat-reply.ts';
import { parseDecodeOptions } from '../../model/decode/options.ts';
import type { GPT } from '../../model/gpt/gpt.ts';
import { withInferenceModel } from '../../model/inference/engine-choice.ts';
import type { ChatMessage, Tokenizer } from '../../model/tokenizer/index.ts';
import { packedSource, permutation, sequenceSource, type MaskedSequence } from '../batching/batches.ts';
import { dialogueSequences } from '../batching/dialogue-sequences.ts';
import { mixedSource } from '../batching/mixed-source.ts';
import { packDocuments } from '../batching/pack-documents.ts';
import { cornellPaths, loadCornellDialogues, type CornellDialogue } from '../data/index.ts';
import { pretrainDocuments } from '../data/pretrain-text.ts';
import { mmiReplies } from '../distill/mmi-replies.ts';
import { loadRewardCheckpoint } from '../ppo/reward-source.ts';
import type { ProgressReporter } from '../progress.ts';
import { emptyPromptIds, replyRelevance } from '../reward/relevance.ts';
import { runTraining, type TrainResult } from '../train-loop.ts';
import { corpusDirOf, loadResumedRun, loopFields, pickLoop, runDir, runFields } from './stage-config.ts';

export const DistillStageSchema = z
  .object({
    ...runFields,
    init: z.string().default('').describe('the SFT policy to start from (default: $STATE_DIR/runs/sft)'),
    reward: z.string().default('models/default/reward').describe('reward model that ranks the targets'),
    prompts: z.number().int().min(1).max(100_000).default(6000).describe('first user turns of Cornell training dialogues answered'),
    lambda: z.number().min(0).max(2).default(1).describe('weight of the reply-only language model subtracted while decoding the targets'),
    antiLmTokens: z.number().int().min(0).max(64).default(8).describe('opening reply tokens decoded with that term (the rest greedy)'),
    plausibility: z.number().min(0).max(1).default(0.1).describe('only tokens at least this share as probable as the best one after the prompt may be chosen'),
    repetitionPenalty: z.number().min(1).max(10).default(1.2).describe('repetition penalty while decoding the targets'),
    maxNewTokens: z.number().int().min(1).max(128).default(32).describe('longest target reply in tokens (ones cut there rank after every reply that ended)'),
    keepShare: z.number().positive().max(1).default(0.5).describe('share of the targets kept, the highest scored by the reward model'),
    maxSameOpening: z.number().int().min(1).max(100_000).default(20).describe('most targets kept that open with the same two words (the rest give way to the next best replies)'),
    cornellShare: z.number().min(0).max(0.9).default(0.4).describe('share of the non-pretraining steps that are Cornell SFT batches'),
    pretrainShare: z.number().min(0).max(0.9).default(0.2).describe('share of steps that are pretraining batches (WikiText + Brown)'),
    ...loopFields({ epochs: 1000, maxSteps: 400, scheduleSteps: 400, batchSize: 16, lr: 3e-4, minLr: 3e-5, warmupSteps: 20, weightDecay: 0.1, gradClip: 1, evalEvery: 100, evalBatches: 16, checkpointEvery: 100, seed: 1 }),
  })
  .strict();
type DistillStageConfig = z.infer<typeof DistillStageSchema>;

interface Target {
  prompt: string;
  reply: string;
  score: number;
}

/** Everything the targets depend on; a targets file made with other settings is not reused. */
function targetSettings(cfg: DistillStageConfig, init: string) {
  const { reward, prompts, lambda, antiLmTokens, plausibility, repetitionPenalty, maxNewTokens, keepShare, maxSameOpening, seed } = cfg;
  return { init, reward, prompts, lambda, antiLmTokens, plausibility, repetitionPenalty, maxNewTokens, keepShare, maxSameOpening, seed };
}

async function makeTargets(cfg: DistillStageConfig, policy: GPT, tokenizer: Tokenizer, train: CornellDialogue[], log: (line: string) => void): Promise<Target[]> {
  const firsts = train.filter((d) => d.offset === 0 && d.messages.length >= 2);
  const order = permutation(firsts.length, cfg.seed * 7919 + 17);
  const prompts: ChatMessage[][] = Array.from(order.subarray(0, Math.min(cfg.prompts, firsts.length)), (i) => [firsts[i].messages[0]]);
  if (prompts.length === 0) throw new Error('distill: the Cornell training split has no dialogues to answer');
  const opts = parseDecodeOptions({ max_new_tokens: cfg.maxNewTokens });
  const rendered = prompts.map((m) => chatPrompt(policy.config, tokenizer, m, opts));
  const control = { eotId: rendered[0].control.eotId, banned: [...(rendered[0].control.banned ?? [])], exempt: new Set(rendered[0].control.exempt ?? []) };
  let t0 = performance.now();
  const replies = await withInferenceModel(policy, (model) =>
    mmiReplies(model, rendered.map((p) => p.ids), emptyPromptIds(tokenizer), control, { lambda: cfg.lambda, antiLmTokens: cfg.antiLmTokens, plausibility: cfg.plausibility, repetitionPenalty: cfg.repetitionPenalty, maxNewTokens: cfg.maxNewTokens, batchSize: 64 }),
  );
  const candidates = replies.flatMap((r, i) => {
    const reply = tokenizer.decode(r.ids, { skipSpecial: true }).trim();
    return reply ? [{ prompt: prompts[i], reply, ended: r.ended }] : [];
  });
  log(`${prompts.length} prompts answered in ${((performance.now() - t0) / 1000).toFixed(0)} s; ${candidates.filter((c) => c.ended).length} replies ended their turn, ${candidates.filter((c) => !c.ended).length} were cut at ${cfg.maxNewTokens} tokens`);
  t0 = performance.now();
  const reward = await loadRewardCheckpoint(cfg.reward, tokenizer);
  const scores: number[] = [];
  try {
    for (let s = 0; s < candidates.length; s += 64) {
      const part = candidates.slice(s, s + 64);
      const head = await reward.score(part.map((c) => c.prompt), part.map((c) => c.reply));
      const relevance = reward.relevanceWeight > 0 ? await replyRelevance(policy, tokenizer, part.map((c) => c.prompt), part.map((c) => c.reply)) : null;
      head.forEach((h, k) => scores.push(h + (relevance ? reward.relevanceWeight * relevance[k] : 0)));
    }
  } finally {
    reward.dispose();
  }
  // Replies that ended their turn first (a cut one would teach the policy to run on), best score first.
  const ranked = candidates.map((c, i) => ({ prompt: c.prompt[0].content, reply: c.reply, score: scores[i], ended: c.ended })).sort((a, b) => Number(b.ended) - Number(a.ended) || b.score - a.score);
  const kept = keepTargets(ranked, Math.round(cfg.keepShare * ranked.length), cfg.maxSameOpening);
  log(`scored by ${reward.describe} in ${((performance.now() - t0) / 1000).toFixed(0)} s; kept the best ${kept.length} (score >= ${kept.at(-1)?.score.toFixed(3)})`);
  return kept;
}

/** A reply's first two words, lower-cased: "But if you don't?" -> "but if". */
export function openingOf(reply: string): string {
  return reply.toLowerCase().split(/\s+/).filter(Boolean).slice(0, 2).join(' ');
}

/**
 * The first `count` of the ranked targets, skipping a reply once `maxSame` kept replies open with
 * its first two words. The anti-LM term favours openings that are rare in replies overall yet
 * plausible after many prompts ("But if ..."); uncapped, one of them fills the targets and the
 * policy learns it as its new answer to everything.
 */
export function keepTargets(ranked: readonly Target[], count: number, maxSame: number): Target[] {
  const opened = new Map<string, number>();
  const kept: Target[] = [];
  for (const { prompt, reply, score } of ranked) {
    if (kept.length >= count) break;
    const opening = openingOf(reply);
    const n = opened.get(opening) ?? 0;
    if (n >= maxSame) continue;
    opened.set(opening, n + 1);
    kept.push({ prompt, reply, score });
  }
  return kept;
}

/**
 * The targets saved by an earlier run with the same settings, or null: none saved, saved with other
 * settings, or unreadable (then they are decoded again; the file is only ever replaced whole).
 */
export async function loadTargets(path: string, settings: object, log: (line: string) => void): Promise<Target[] | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const [head, ...lines] = text.split('\n').filter(Boolean);
    if (JSON.stringify((JSON.parse(head) as { settings?: unknown }).settings) !== JSON.stringify(settings)) {
      log(`${path} was made with other settings; decoding the targets again`);
      return null;
    }
    return lines.map((l, i) => {
      const t = JSON.parse(l) as Partial<Target>;
      if (typeof t.prompt !== 'string' || typeof t.reply !== 'string' || typeof t.score !== 'number') throw new Error(`line ${i + 2} is not a target`);
      return t as Target;
    });
  } catch (err) {
    log(`${path} is unreadable (${err instanceof Error ? err.message : String(err)}); decoding the targets again`);
    return null;
  }
}

export async function runDistillStage(given: DistillStageConfig, explicit: Set<string>, progress: ProgressReporter, log: (line: string) => void): Promise<TrainResult & { out: string; targets: number }> {
  let cfg = given;
  const out = cfg.out || runDir('distill');
  let loaded;
  if (cfg.resume) {
    ({ loaded, cfg } = await loadResumedRun(out, given, explicit, log));
  }
  const init = cfg.init || runDir('sft');
  // Fresh, the SFT policy is both where the targets come from and the model trained. Resumed, the
  // saved checkpoint is trained, and the SFT policy is loaded only if the targets must be decoded again.
  const start = loaded ?? (await loadModel(init, { expectKind: 'policy' }));
  const { model, tokenizer } = start;
  try {
    const corpusDir = corpusDirOf(cfg.corpusDir);
    const { dialogues } = await loadCornellDialogues(cornellPaths(corpusDir), { log });
    const targetsPath = `${out}.targets.jsonl`;
    const settings = targetSettings(cfg, init);
    let targets = await loadTargets(targetsPath, settings, log);
    if (targets) log(`reusing ${targets.length} targets from ${targetsPath}`);
    else {
      const source = loaded ? await loadModel(init, { expectKind: 'policy' }) : start;
      try {
        log(`policy ${init} (step ${source.meta.step}): decoding targets`);
        targets = await makeTargets(cfg, source.model, tokenizer, dialogues.train, log);
      } finally {
        if (source !== start) source.model.dispose();
      }
      await writeFileAtomically(targetsPath, [JSON.stringify({ settings }), ...targets.map((t) => JSON.stringify(t))].join('\n') + '\n');
    }
    if (targets.length === 0) throw new Error('distill: the policy gave only empty replies; nothing to train on');
    const T = model.config.context;
    const asSeqs = (ds: readonly (readonly ChatMessage[])[]): MaskedSequence[] => ds.flatMap((m) => dialogueSequences(tokenizer, m, T + 1));
    const targetSeqs = asSeqs(targets.map((t) => [{ role: 'user', content: t.prompt }, { role: 'assistant', content: t.reply }]));
    let train = sequenceSource(targetSeqs, { batchSize: cfg.batchSize, context: T, seed: cfg.seed, padId: tokenizer.special.pad });
    if (cfg.cornellShare > 0) {
      const cornell = asSeqs(dialogues.train.map((d) => d.messages));
      train = mixedSource(train, sequenceSource(cornell, { batchSize: cfg.batchSize, context: T, seed: cfg.seed + 2, padId: tokenizer.special.pad }), cfg.cornellShare);
    }
    if (cfg.pretrainShare > 0) {
      const stream = packDocuments(tokenizer, await pretrainDocuments(corpusDir, { brown: true, cornell: false }, log));
      train = mixedSource(train, packedSource(stream, { batchSize: cfg.batchSize, context: T, seed: cfg.seed + 1 }), cfg.pretrainShare);
    }
    log(`${targetSeqs.length} target sequences; ${(100 * cfg.cornellShare).toFixed(0)}% of the other steps Cornell SFT batches; ${(100 * cfg.pretrainShare).toFixed(0)}% pretraining batches`);
    const heldOut = sequenceSource(asSeqs(dialogues.valid.map((d) => d.messages)), { batchSize: cfg.batchSize, context: T, seed: 12345, padId: tokenizer.special.pad });
    const result = await runTraining({ stage: 'distill', model, tokenizer, train, heldOut, loop: pickLoop(cfg), config: cfg, out, parent: init, resume: loaded?.resume, progress });
    return { ...result, out, targets: targets.length };
  } finally {
    model.dispose();
  }
}
