/**
 * Stage `pretrain`: a GPT learns language from packed WikiText (+ Brown, + Cornell training-split
 * conversations as plain text) token streams; held-out loss and perplexity on the WikiText
 * held-out slice (see data/pretrain-text.ts; WikiText-2 test is left for the final report).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { gptConfig, PRESET_NAMES, type PresetName } from '../../model/gpt/config.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { Tokenizer } from '../../model/tokenizer/index.ts';
import { packedSource } from '../batching/batches.ts';
import type { ProgressReporter } from '../progress.ts';
import { runTraining, type TrainResult } from '../train-loop.ts';
import { packDocuments } from '../batching/pack-documents.ts';
import { pretrainDocuments, wikiTrainAndHeldOut } from '../data/pretrain-text.ts';
import { corpusDirOf, loadResumedRun, loopFields, pickLoop, runDir, runFields } from './stage-config.ts';

export const PretrainStageSchema = z
  .object({
    ...runFields,
    tokenizer: z.string().default('').describe('tokenizer.json (default: $STATE_DIR/runs/tokenizer/tokenizer.json)'),
    preset: z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]).default('small'),
    dropout: z.number().min(-1).max(0.9).default(-1).describe("dropout (-1 = the preset's)"),
    brown: z.boolean().default(true).describe('add the Brown corpus to the training text'),
    cornell: z.boolean().default(false).describe('add the Cornell training-split conversations as plain text'),
    ...loopFields({ epochs: 2, maxSteps: 0, batchSize: 16, lr: 2e-3, minLr: 2e-4, warmupSteps: 100, weightDecay: 0.1, gradClip: 1, evalEvery: 250, evalBatches: 8, checkpointEvery: 250, seed: 1 }),
  })
  .strict();
type PretrainStageConfig = z.infer<typeof PretrainStageSchema>;

export async function runPretrainStage(given: PretrainStageConfig, explicit: Set<string>, progress: ProgressReporter, log: (line: string) => void): Promise<TrainResult & { out: string }> {
  let cfg = given;
  const out = cfg.out || runDir('pretrain');
  let model: GPT;
  let tokenizer: Tokenizer;
  let resume;
  if (cfg.resume) {
    const r = await loadResumedRun(out, given, explicit, log);
    ({ model, tokenizer, resume } = r.loaded);
    cfg = r.cfg;
  } else {
    const tokPath = cfg.tokenizer || join(runDir('tokenizer'), 'tokenizer.json');
    tokenizer = Tokenizer.fromJSON(JSON.parse(await readFile(tokPath, 'utf8')));
    const overrides = { vocabSize: tokenizer.vocabSize, initSeed: cfg.seed, ...(cfg.dropout >= 0 ? { dropout: cfg.dropout } : {}) };
    model = new GPT(gptConfig(cfg.preset, overrides));
  }
  try {
    const corpusDir = corpusDirOf(cfg.corpusDir);
    const T = model.config.context;
    const stream = packDocuments(tokenizer, await pretrainDocuments(corpusDir, { brown: cfg.brown, cornell: cfg.cornell ?? false }, log));
    const wiki = await wikiTrainAndHeldOut(corpusDir);
    const held = packDocuments(tokenizer, wiki.heldOut);
    log(`training stream ${stream.length.toLocaleString('en-US')} tokens, held-out ${held.length.toLocaleString('en-US')} tokens (${wiki.heldOutName})`);
    const train = packedSource(stream, { batchSize: cfg.batchSize, context: T, seed: cfg.seed });
    const heldOut = packedSource(held, { batchSize: cfg.batchSize, context: T, seed: 12345 });
    const result = await runTraining({ stage: 'pretrain', model, tokenizer, train, heldOut, loop: pickLoop(cfg), config: cfg, out, parent: null, resume, progress });
    return { ...result, out };
  } finally {
    model.dispose();
  }
}
