/**
 * `npm run bench:model -- [--json] [--preset small] [--runs 3] [--skip-train]`
 *
 * Throughput of the GPT on the chosen engine, with random token ids on a randomly initialised model
 * (speed does not depend on the weights). Progress goes to stderr; with `--json` the last stdout line
 * is one JSON object, otherwise a small table.
 *
 * Measurements (each a median over `--runs`, after a warm-up):
 * - train_tokens_per_s: one step = tf.variableGrads over maskedCrossEntropy(lmLogits(hidden(x, true)),
 *   y, ones) + Adam applyGradients with an explicit var list, in one tf.tidy; B=16, T=min(128, context).
 * - decode_tokens_per_s: batch 1, prefill a 16-token prompt, then 64 `step` calls (greedy argmax);
 *   tokens/s over the steps only.
 * - decode_nocache_tokens_per_s: batch 1, same prompt, 64 new tokens each from a full forward over the
 *   whole sequence so far (prefill of the sequence, cache discarded).
 * - decode_batch8_tokens_per_s: 8 prompts of 12..19 tokens prefilled together, 64 steps, 8*64/time.
 * When the context cannot hold prompt + 64 new tokens (tiny), fewer steps are run and reported in
 * `decode_steps` / `decode_batch8_steps` and in `deviations`.
 * `--skip-train` (the default for `gpt2`, GPT-2's 124M shape, where the question is decode speed and
 * memory) leaves the training figures null and says so in `deviations`; `--train` measures them anyway.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { parseFlags, parsePreset, runCommand, UsageError } from '../model/cli/args.ts';
import { initEngine } from '../model/backend.ts';
import { countParams, gptConfig, type PresetName } from '../model/gpt/config.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { idSource, measureDecode, measureTrain, peakRssBytes, round, sampleRss, TRAIN_BATCH, TRAIN_CONTEXT } from './lib/model-measure.ts';

const USAGE = 'usage: npm run bench:model -- [--json] [--preset tiny|small|base|gpt2] [--runs N] [--skip-train | --train]';

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

interface BenchResult {
  backend: string;
  preset: PresetName;
  params: number;
  train_tokens_per_s: number | null;
  decode_tokens_per_s: number;
  decode_nocache_tokens_per_s: number;
  decode_batch8_tokens_per_s: number;
  train_step_s: number | null;
  decode_prompt_tokens: number;
  decode_steps: number;
  decode_batch8_prompt_tokens: [number, number];
  decode_batch8_steps: number;
  peak_rss_mb: number;
  config: {
    vocab_size: number;
    d_model: number;
    n_layers: number;
    n_heads: number;
    context: number;
    batch: number;
    train_seq_len: number;
    dropout: number;
  };
  runs: number;
  cores: number;
  node: string;
  engine: { tf_backend: string; simd: boolean | null };
  tensors_leaked: number;
  wall_s: number;
  /** Where a measurement could not follow its definition (e.g. a context too short), in words. */
  deviations: string[];
}

type Measured = Pick<
  BenchResult,
  | 'backend'
  | 'preset'
  | 'params'
  | 'train_tokens_per_s'
  | 'decode_tokens_per_s'
  | 'decode_nocache_tokens_per_s'
  | 'decode_batch8_tokens_per_s'
  | 'train_step_s'
  | 'decode_prompt_tokens'
  | 'decode_steps'
  | 'decode_batch8_prompt_tokens'
  | 'decode_batch8_steps'
>;

async function bench(preset: PresetName, runs: number, skipTrain: boolean): Promise<BenchResult> {
  const engine = await initEngine();
  const timer = setInterval(sampleRss, 50);
  timer.unref();
  sampleRss();
  const cfg = gptConfig(preset);
  const tensorsBefore = tf.memory().numTensors;
  const model = new GPT(cfg);
  const ids = idSource(1234, cfg.vocabSize);
  const started = performance.now();
  let result: Measured;
  let deviations: string[];
  try {
    log(`engine ${engine.name}, preset ${preset} (${countParams(cfg).toLocaleString('en-US')} params), ${runs} run(s), ${availableParallelism()} cores`);
    const train = skipTrain ? null : measureTrain(model, cfg, runs, ids, log);
    const decode = await measureDecode(model, cfg, runs, ids, { log });
    deviations = skipTrain ? ['training not measured (--skip-train)', ...decode.deviations] : decode.deviations;
    result = {
      backend: engine.name,
      preset,
      params: countParams(cfg),
      train_tokens_per_s: train?.tokens_per_s ?? null,
      decode_tokens_per_s: decode.cached_tokens_per_s,
      decode_nocache_tokens_per_s: decode.nocache_tokens_per_s,
      decode_batch8_tokens_per_s: decode.batch8_tokens_per_s!,
      train_step_s: train?.step_s ?? null,
      decode_prompt_tokens: decode.prompt_tokens,
      decode_steps: decode.steps,
      decode_batch8_prompt_tokens: decode.batch8_prompt_tokens!,
      decode_batch8_steps: decode.batch8_steps!,
    };
  } finally {
    model.dispose();
    clearInterval(timer);
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) throw new Error(`bench leaked ${leaked} tensors`);
  sampleRss();
  return {
    ...result,
    peak_rss_mb: round(peakRssBytes() / 2 ** 20),
    config: {
      vocab_size: cfg.vocabSize,
      d_model: cfg.dModel,
      n_layers: cfg.nLayers,
      n_heads: cfg.nHeads,
      context: cfg.context,
      batch: TRAIN_BATCH,
      train_seq_len: Math.min(TRAIN_CONTEXT, cfg.context),
      dropout: cfg.dropout,
    },
    runs,
    cores: availableParallelism(),
    node: process.version,
    engine: { tf_backend: engine.tfBackend, simd: engine.simd ?? null },
    tensors_leaked: leaked,
    wall_s: round((performance.now() - started) / 1000, 1),
    deviations,
  };
}

function table(r: BenchResult): string {
  const rows: [string, string][] = [
    ['backend', `${r.backend}`],
    ['preset', `${r.preset} (${r.params.toLocaleString('en-US')} params)`],
    ['train', r.train_tokens_per_s === null ? 'not measured' : `${r.train_tokens_per_s} tok/s (B=${TRAIN_BATCH}, ${r.train_step_s}s/step)`],
    ['decode (KV cache)', `${r.decode_tokens_per_s} tok/s`],
    ['decode (no cache)', `${r.decode_nocache_tokens_per_s} tok/s`],
    ['decode (batch 8)', `${r.decode_batch8_tokens_per_s} tok/s aggregate`],
    ['peak RSS', `${r.peak_rss_mb} MB`],
    ['runs / cores / node', `${r.runs} / ${r.cores} / ${r.node}`],
  ];
  for (const d of r.deviations) rows.push(['deviation', d]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

function parse(argv: string[]): { json: boolean; preset: PresetName; runs: number; skipTrain: boolean } | 'help' {
  const values = parseFlags(argv, {
    json: { type: 'boolean' },
    'skip-train': { type: 'boolean' },
    train: { type: 'boolean' },
    preset: { type: 'string' },
    runs: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const preset = parsePreset(values.preset, 'small');
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (values.runs !== undefined && (!/^\d+$/.test(values.runs) || runs < 1 || runs > 100)) {
    throw new UsageError(`--runs: expected an integer in [1, 100], got '${values.runs}'`);
  }
  if (values['skip-train'] && values.train) throw new UsageError('--skip-train and --train contradict each other');
  return { json: Boolean(values.json), preset, runs, skipTrain: Boolean(values['skip-train']) || (preset === 'gpt2' && !values.train) };
}

async function main(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const result = await bench(args.preset, args.runs, args.skipTrain);
  log(`done in ${result.wall_s}s`);
  process.stdout.write((args.json ? JSON.stringify(result) : table(result)) + '\n');
}

runCommand('bench:model', () => main(process.argv.slice(2)));
