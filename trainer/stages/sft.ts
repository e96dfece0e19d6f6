/**
 * Stage `sft`: supervised fine-tuning on Cornell movie dialogues, initialised from the pretrained
 * checkpoint. Conversations are rendered with the chat template and the loss covers only the
 * assistant's tokens (and their end-of-turn); held-out loss on the validation movies.
 *
 * Every turn after a conversation's first is trained on as an assistant reply: `bothOffsets` adds
 * the dialogue shifted by one turn, so both characters' lines are replies (see data/cornell.ts).
 * With `--pretrain-share=s`, a share s of the steps are pretraining batches (WikiText's training
 * part + Brown, packed as in pretraining) against forgetting the text pretraining taught.
 */
import { z } from 'zod';
import { loadModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { packedSource, sequenceSource, type MaskedSequence } from '../batching/batches.ts';
import { mixedSource } from '../batching/mixed-source.ts';
import { packDocuments } from '../batching/pack-documents.ts';
import { cornellPaths, loadCornellDialogues } from '../data/index.ts';
import { pretrainDocuments } from '../data/pretrain-text.ts';
import type { ProgressReporter } from '../progress.ts';
import { runTraining, type TrainResult } from '../train-loop.ts';
import { dialogueSequences } from '../batching/dialogue-sequences.ts';
import { frequentReplies, replyKey } from '../data/frequent-replies.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { corpusDirOf, loadResumedRun, loopFields, pickLoop, runDir, runFields } from './stage-config.ts';

export const SftStageSchema = z
  .object({
    ...runFields,
    init: z.string().default('').describe('pretrained checkpoint (default: $STATE_DIR/runs/pretrain)'),
    bothOffsets: z.boolean().default(true).describe("train on both characters' lines as the assistant"),
    pretrainShare: z.number().min(0).max(0.9).default(0).describe('share of steps that are pretraining batches (WikiText + Brown), against forgetting'),
    dropFrequentReplies: z.number().int().min(0).default(0).describe('leave out of the loss the replies whose text occurs at least this often among the training replies ("What?", "I don\'t know."); 0 keeps all'),
    ...loopFields({ epochs: 1, maxSteps: 0, batchSize: 16, lr: 1e-3, minLr: 1e-4, warmupSteps: 50, weightDecay: 0.1, gradClip: 1, evalEvery: 250, evalBatches: 16, checkpointEvery: 250, seed: 1 }),
  })
  .strict();
type SftStageConfig = z.infer<typeof SftStageSchema>;

export async function runSftStage(given: SftStageConfig, explicit: Set<string>, progress: ProgressReporter, log: (line: string) => void): Promise<TrainResult & { out: string }> {
  let cfg = given;
  const out = cfg.out || runDir('sft');
  let loaded;
  if (cfg.resume) {
    ({ loaded, cfg } = await loadResumedRun(out, given, explicit, log));
  } else {
    const init = cfg.init || runDir('pretrain');
    loaded = await loadModel(init, { expectKind: 'policy' });
    log(`initialised from ${init} (step ${loaded.meta.step})`);
  }
  const { model, tokenizer, resume } = loaded;
  try {
    const T = model.config.context;
    const corpusDir = corpusDirOf(cfg.corpusDir);
    const { dialogues } = await loadCornellDialogues(cornellPaths(corpusDir), { bothOffsets: cfg.bothOffsets, log });
    const toSeqs = (ds: typeof dialogues.train, trainOn?: (m: ChatMessage) => boolean): MaskedSequence[] => ds.flatMap((d) => dialogueSequences(tokenizer, d.messages, T + 1, trainOn));
    let trainOn: ((m: ChatMessage) => boolean) | undefined;
    if (cfg.dropFrequentReplies > 0) {
      const frequent = frequentReplies(dialogues.train, cfg.dropFrequentReplies);
      trainOn = (m) => !frequent.has(replyKey(m.content));
      const left = dialogues.train.flatMap((d) => d.messages).filter((m) => m.role === 'assistant' && !trainOn!(m)).length;
      log(`leaving ${left} replies out of the loss: ${frequent.size} texts that occur >= ${cfg.dropFrequentReplies} times`);
    }
    const trainSeqs = toSeqs(dialogues.train, trainOn);
    // Held-out loss covers every reply, so runs with and without the filter compare.
    const validSeqs = toSeqs(dialogues.valid);
    log(`${dialogues.train.length} training dialogues -> ${trainSeqs.length} sequences; ${validSeqs.length} held-out sequences`);
    let train = sequenceSource(trainSeqs, { batchSize: cfg.batchSize, context: T, seed: cfg.seed, padId: tokenizer.special.pad });
    const share = cfg.pretrainShare ?? 0;
    if (share > 0) {
      const stream = packDocuments(tokenizer, await pretrainDocuments(corpusDir, { brown: true, cornell: false }, log));
      train = mixedSource(train, packedSource(stream, { batchSize: cfg.batchSize, context: T, seed: cfg.seed + 1 }), share);
      log(`mixing in pretraining batches: ${(100 * share).toFixed(0)}% of steps, from a ${stream.length.toLocaleString('en-US')}-token stream`);
    }
    const heldOut = sequenceSource(validSeqs, { batchSize: cfg.batchSize, context: T, seed: 12345, padId: tokenizer.special.pad });
    const parent = cfg.resume ? (loaded.meta.parent ?? null) : cfg.init || runDir('pretrain');
    const result = await runTraining({ stage: 'sft', model, tokenizer, train, heldOut, loop: pickLoop(cfg), config: cfg, out, parent, resume, progress });
    return { ...result, out };
  } finally {
    model.dispose();
  }
}
