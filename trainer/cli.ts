/**
 * `npm run train -- <stage> [--key=value ...]`: one command for the offline pipeline's stages.
 * Exit codes: 0 done, 2 bad usage or flags, 3 stopped on a non-finite loss, 1 any other failure.
 */
import { initEngine } from '../model/backend.ts';
import { describeFlags, explicitKeys, FlagError, parseFlags } from './flags.ts';
import { createProgress, progressMode } from './progress.ts';
import { runPretrainStage, PretrainStageSchema } from './stages/pretrain.ts';
import { runSftStage, SftStageSchema } from './stages/sft.ts';
import { runTokenizerStage, TokenizerStageSchema } from './stages/tokenizer.ts';
import { ExportStageSchema, runExportStage } from './stages/export.ts';
import { NonFiniteLossError } from './train-loop.ts';

const STAGES = {
  tokenizer: TokenizerStageSchema,
  pretrain: PretrainStageSchema,
  sft: SftStageSchema,
  export: ExportStageSchema,
} as const;
type Stage = keyof typeof STAGES;

const log = (stage: string) => (line: string) => process.stderr.write(`[${stage}] ${line}\n`);

function usage(): string {
  return [
    'usage: npm run train -- <stage> [--key=value ...]',
    ...Object.entries(STAGES).map(([name, schema]) => `\n${name}:\n${describeFlags(schema)}`),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [stage, ...rest] = argv;
  if (!stage || stage === '--help' || stage === '-h') {
    process.stderr.write(usage() + '\n');
    return stage ? 0 : 2;
  }
  if (!(stage in STAGES)) throw new FlagError(`unknown stage '${stage}'; stages: ${Object.keys(STAGES).join(', ')}`);
  const name = stage as Stage;
  const say = log(name);
  switch (name) {
    case 'tokenizer': {
      const cfg = parseFlags(rest, TokenizerStageSchema);
      const r = await runTokenizerStage(cfg, say);
      say(`tokenizer with ${r.vocabSize} ids written to ${r.path} in ${r.seconds.toFixed(1)}s`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', ...r }) + '\n');
      return 0;
    }
    case 'export': {
      const cfg = parseFlags(rest, ExportStageSchema);
      await initEngine();
      const r = await runExportStage(cfg);
      say(`exported step ${r.step} to ${r.out} (weights sha256 ${r.sha256.slice(0, 12)}…)`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', ...r }) + '\n');
      return 0;
    }
    case 'pretrain':
    case 'sft': {
      const cfg = name === 'pretrain' ? parseFlags(rest, PretrainStageSchema) : parseFlags(rest, SftStageSchema);
      await initEngine();
      const progress = createProgress(name, progressMode(cfg.json));
      const r = name === 'pretrain'
        ? await runPretrainStage(cfg as ReturnType<typeof PretrainStageSchema.parse>, explicitKeys(rest), progress, say)
        : await runSftStage(cfg as ReturnType<typeof SftStageSchema.parse>, explicitKeys(rest), progress, say);
      say(`done: ${r.steps} steps, final train loss ${r.finalLoss.toFixed(4)}${r.eval ? `, held-out loss ${r.eval.loss.toFixed(4)} ppl ${r.eval.ppl.toFixed(2)}` : ''}; checkpoint ${r.out}`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', steps: r.steps, final_loss: r.finalLoss, eval: r.eval, out: r.out }) + '\n');
      return 0;
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`train: ${message}\n`);
    process.exit(err instanceof FlagError ? 2 : err instanceof NonFiniteLossError ? 3 : 1);
  },
);
