/**
 * `npm run eval -- --checkpoint DIR [--json] [--corpus-dir D] [--split valid]`: the evaluation report
 * of a checkpoint (see evaluation.ts). Markdown by default; with --json, one JSON object on the last
 * stdout line. `--split valid` measures on validation data (for recipe choices), the default on test.
 */
import { z } from 'zod';
import { initEngine } from '../model/backend.ts';
import { runCommand } from '../model/cli/args.ts';
import { resolveDefaultCheckpoint } from '../model/checkpoint/default-checkpoint.ts';
import { loadModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { resolveCorpusDir } from './data/index.ts';
import { evalJson, evaluateCheckpoint, reportMarkdown } from './evaluation.ts';
import { FlagError, parseFlags } from './flags.ts';

const EvalSchema = z
  .object({
    checkpoint: z.string().default(''),
    corpusDir: z.string().default(''),
    json: z.boolean().default(false),
    split: z.enum(['test', 'valid']).default('test').describe('test: the report; valid: Cornell valid movies + the WikiText held-out slice, for recipe choices'),
    maxTokens: z.number().int().min(100).default(20000).describe('target tokens per perplexity'),
    prompts: z.number().int().min(1).max(2000).default(200),
    maxNewTokens: z.number().int().min(1).max(256).default(32),
    beamWidth: z.number().int().min(1).max(16).default(4),
  })
  .strict();

async function main(): Promise<void> {
  const cfg = parseFlags(process.argv.slice(2), EvalSchema);
  const dir = cfg.checkpoint || resolveDefaultCheckpoint().dir;
  await initEngine();
  const t0 = performance.now();
  const { model, tokenizer, meta } = await loadModel(dir, { expectKind: 'policy' });
  try {
    const report = await evaluateCheckpoint(model, tokenizer, {
      split: cfg.split,
      corpusDir: resolveCorpusDir({ flag: cfg.corpusDir || undefined }),
      maxTokens: cfg.maxTokens,
      prompts: cfg.prompts,
      maxNewTokens: cfg.maxNewTokens,
      beamWidth: cfg.beamWidth,
    });
    const seconds = (performance.now() - t0) / 1000;
    process.stderr.write(`[eval] ${dir} (step ${meta.step}) in ${seconds.toFixed(1)}s\n`);
    if (cfg.json) process.stdout.write(JSON.stringify({ checkpoint: dir, step: meta.step, seconds, ...evalJson(report) }) + '\n');
    else process.stdout.write(reportMarkdown(dir, report) + '\n');
  } finally {
    model.dispose();
  }
}

runCommand('eval', main, [[FlagError, 2]]);
