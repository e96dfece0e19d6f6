/**
 * `npm run train -- <stage> [--key=value ...]`: one command for the offline pipeline's stages.
 * Exit codes: 0 done, 2 bad usage or flags, 3 stopped on a non-finite loss, 1 any other failure.
 */
import { initEngine } from '../model/backend.ts';
import { runCommand } from '../model/cli/args.ts';
import { describeFlags, explicitKeys, FlagError, parseFlags } from './flags.ts';
import { createProgress, progressMode } from './progress.ts';
import { runPretrainStage, PretrainStageSchema } from './stages/pretrain.ts';
import { runSftStage, SftStageSchema } from './stages/sft.ts';
import { runTokenizerStage, TokenizerStageSchema } from './stages/tokenizer.ts';
import { AverageStageSchema, runAverageStage } from './stages/average.ts';
import { ExportStageSchema, runExportStage } from './stages/export.ts';
import { PpoStageSchema, runPpoStage } from './stages/ppo.ts';
import { RmStageSchema, runRmStage } from './stages/rm.ts';
import { DistillStageSchema, runDistillStage } from './stages/distill.ts';
import { NonFiniteLossError } from './train-loop.ts';

const STAGES = {
  tokenizer: TokenizerStageSchema,
  pretrain: PretrainStageSchema,
  sft: SftStageSchema,
  distill: DistillStageSchema,
  rm: RmStageSchema,
  ppo: PpoStageSchema,
  export: ExportStageSchema,
  average: AverageStageSchema,
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
    case 'rm': {
      const cfg = parseFlags(rest, RmStageSchema);
      await initEngine();
      const r = await runRmStage(cfg, createProgress(name, progressMode(cfg.json)), say);
      const accuracy = Object.entries(r.evals).map(([s, e]) => `${s} ${(100 * e.accuracy).toFixed(1)}%`).join(', ');
      say(`done: ${r.steps} steps; held-out accuracy ${accuracy}; reward mean ${r.rewardMean.toFixed(3)} std ${r.rewardStd.toFixed(3)}; checkpoint ${r.out}`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', steps: r.steps, eval: r.evals, eval_by_kind: r.evalsByKind, relevance_weight: r.relevanceWeight, relevance_fit: r.relevanceFit, eval_head_only: r.evalsHeadOnly, eval_by_kind_head_only: r.evalsByKindHeadOnly, reward_mean: r.rewardMean, reward_std: r.rewardStd, out: r.out }) + '\n');
      return 0;
    }
    case 'ppo': {
      const cfg = parseFlags(rest, PpoStageSchema);
      await initEngine();
      // With --json: exactly one JSON object per iteration on stdout.
      const progress = cfg.json ? createProgress(name, 'lines', Infinity) : createProgress(name, progressMode(false), 1);
      const emit = cfg.json ? (m: object) => process.stdout.write(JSON.stringify(m) + '\n') : undefined;
      const r = await runPpoStage(cfg, progress, say, emit);
      const first = r.history[0];
      const last = r.history.at(-1)!;
      say(`done: ${r.history.length} iterations, reward ${first.reward_mean.toFixed(3)} -> ${last.reward_mean.toFixed(3)}, kl ${last.kl.toFixed(3)}; policy ${r.out}`);
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
    case 'average': {
      const cfg = parseFlags(rest, AverageStageSchema);
      await initEngine();
      const r = await runAverageStage(cfg);
      say(`averaged the snapshots of steps ${r.steps.join(', ')} into ${r.out} (weights sha256 ${r.sha256.slice(0, 12)}…)`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', ...r }) + '\n');
      return 0;
    }
    case 'distill': {
      const cfg = parseFlags(rest, DistillStageSchema);
      await initEngine();
      const r = await runDistillStage(cfg, explicitKeys(rest), createProgress(name, progressMode(cfg.json)), say);
      say(`done: ${r.steps} steps on ${r.targets} targets, final train loss ${r.finalLoss.toFixed(4)}${r.eval ? `, held-out loss ${r.eval.loss.toFixed(4)} ppl ${r.eval.ppl.toFixed(2)}` : ''}; checkpoint ${r.out}`);
      if (cfg.json) process.stdout.write(JSON.stringify({ stage: name, event: 'done', steps: r.steps, targets: r.targets, final_loss: r.finalLoss, eval: r.eval, out: r.out }) + '\n');
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

runCommand('train', () => main(process.argv.slice(2)), [[FlagError, 2], [NonFiniteLossError, 3]]);
