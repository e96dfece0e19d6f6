/**
 * Stage `tokenizer`: a byte-level BPE trained on the pretraining text and the Cornell training
 * dialogues (so that both prose and conversational words get merges). Writes tokenizer.json.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomically } from '../../model/checkpoint/atomic-dir.ts';
import { trainBpe } from '../../model/tokenizer/index.ts';
import { cornellPaths, loadCornellDialogues } from '../data/index.ts';
import { pretrainDocuments } from '../data/pretrain-text.ts';
import { corpusDirOf, runDir } from './stage-config.ts';

export const TokenizerStageSchema = z
  .object({
    corpusDir: z.string().default(''),
    out: z.string().default('').describe('tokenizer file (default: $STATE_DIR/runs/tokenizer/tokenizer.json)'),
    vocabSize: z.number().int().min(263).max(65536).default(4096),
    brown: z.boolean().default(true).describe('include the Brown corpus'),
    cornell: z.boolean().default(true).describe('include the Cornell training dialogues'),
    maxChars: z.number().int().min(1000).default(8_000_000).describe('cap on training text (characters)'),
    json: z.boolean().default(false),
  })
  .strict();
type TokenizerStageConfig = z.infer<typeof TokenizerStageSchema>;

export async function runTokenizerStage(cfg: TokenizerStageConfig, log: (line: string) => void): Promise<{ path: string; vocabSize: number; chars: number; seconds: number }> {
  const t0 = performance.now();
  const corpusDir = corpusDirOf(cfg.corpusDir);
  const texts = await pretrainDocuments(corpusDir, { brown: cfg.brown, cornell: false }, log);
  if (cfg.cornell) {
    const { dialogues } = await loadCornellDialogues(cornellPaths(corpusDir), { log });
    for (const d of dialogues.train) texts.push(d.messages.map((m) => m.content).join('\n'));
  }
  // Keep an even spread of the sources when capping: every k-th text.
  const chars = texts.reduce((a, t) => a + t.length, 0);
  const stride = Math.max(1, Math.ceil(chars / cfg.maxChars));
  const sample = texts.filter((_, i) => i % stride === 0);
  const used = sample.reduce((a, t) => a + t.length, 0);
  log(`training BPE (vocab ${cfg.vocabSize}) on ${used.toLocaleString('en-US')} characters from ${sample.length} texts`);
  const tok = trainBpe(sample, { vocabSize: cfg.vocabSize });
  if (tok.vocabSize !== cfg.vocabSize) throw new Error(`the text yields only ${tok.vocabSize} ids; need ${cfg.vocabSize} (use more text or a smaller --vocab-size)`);
  const path = cfg.out || join(runDir('tokenizer'), 'tokenizer.json');
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomically(path, JSON.stringify(tok.toJSON()));
  return { path, vocabSize: tok.vocabSize, chars: used, seconds: (performance.now() - t0) / 1000 };
}
