/**
 * `npm run bench:model -- [--json] [--preset small] [--runs 3] [--skip-train] [--torch]`
 *
 * Throughput of the GPT, with random token ids on a randomly initialised model (speed does not depend
 * on the weights). Training runs on tfjs; the decode figures are measured on the serving inference
 * engine (`inference_engine`: ort by default, see model/inference) and, from the same run, on tfjs
 * (under `tfjs`). With ort, `ort_threads` repeats batch-1 and batch-8 decode with 1 and 2 intra-op
 * threads. Progress goes to stderr; with `--json` the last stdout line
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
 * - prefill_16_ms / prefill_100_ms: batch-1 prefill of a 16- and a 100-token prompt (or the context),
 *   median over the runs.
 * When the context cannot hold prompt + 64 new tokens (tiny), fewer steps are run and reported in
 * `decode_steps` / `decode_batch8_steps` and in `deviations`.
 * `--skip-train` (the default for `gpt2`, GPT-2's 124M shape, where the question is decode speed and
 * memory) leaves the training figures null and says so in `deviations`; `--train` measures them anyway.
 * `--torch` adds the PyTorch eager reference, run right after the decode figures: bench/torch/decode.py
 * (the same GPT and decode measurements, on python3 with Debian's python3-torch) with 1 and 2 intra-op
 * threads, under `pytorch` ({ version, python, blas, by_threads }); `pytorch` is null, and `deviations` says
 * why, when python3 or torch is missing or the script fails.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { parseFlags, parsePreset, runCommand, UsageError } from '../model/cli/args.ts';
import { initEngine } from '../model/backend.ts';
import { countParams, gptConfig, type GPTConfig, type PresetName } from '../model/gpt/config.ts';
import { GPT } from '../model/gpt/gpt.ts';
import { inferenceModel, initInference, type InferenceEngineInfo } from '../model/inference/engine-choice.ts';
import type { InferenceModel } from '../model/inference/inference-model.ts';
import { measureTorch, type EngineDecodeFigures, type TorchReference } from './lib/torch-reference.ts';
import { idSource, measureDecode, measureTrain, peakRssBytes, round, sampleRss, timePrefill, TRAIN_BATCH, TRAIN_CONTEXT, type DecodeFigures } from './lib/model-measure.ts';

const USAGE = 'usage: npm run bench:model -- [--json] [--preset tiny|small|base|gpt2] [--runs N] [--skip-train | --train] [--torch]';

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
  prefill_16_ms: number;
  prefill_100_ms: number;
  inference_engine: { name: string; reason: string; provider: string | null; threads: number | null; version: string | null };
  /** The decode figures on tfjs (the training engine and the fallback), same run. */
  tfjs: EngineDecodeFigures;
  /** Batch-1 and batch-8 cached decode per CPU second of this process (see bench/lib/model-measure.ts). */
  decode_cpu_tokens_per_s: number;
  decode_batch8_cpu_tokens_per_s: number;
  /** ort only: batch-1 and batch-8 decode by intra-op thread count. */
  ort_threads?: { threads: number; decode_tokens_per_s: number; decode_batch8_tokens_per_s: number }[];
  /** --torch only: the PyTorch eager reference on the same config; null when it could not run (see deviations). */
  pytorch?: TorchReference | null;
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
  | 'prefill_16_ms'
  | 'prefill_100_ms'
  | 'decode_cpu_tokens_per_s'
  | 'decode_batch8_cpu_tokens_per_s'
  | 'tfjs'
  | 'ort_threads'
  | 'pytorch'
>;

/** Decode throughput and prefill latency of one inference model. */
async function decodeFigures(model: InferenceModel, cfg: GPTConfig, runs: number, label: string): Promise<DecodeFigures & { prefill_16_ms: number; prefill_100_ms: number }> {
  log(`decode on ${label}`);
  const decode = await measureDecode(model, cfg, runs, idSource(1234, cfg.vocabSize), { log });
  const prefillIds = idSource(99, cfg.vocabSize);
  return {
    ...decode,
    prefill_16_ms: await timePrefill(model, prefillIds, Math.min(16, cfg.context), runs * 5),
    prefill_100_ms: await timePrefill(model, prefillIds, Math.min(100, cfg.context), runs * 5),
  };
}

/** The serving engine's figures (a separate ORT model from the same weights), tfjs's, and ort's by thread count. */
async function measureEngines(model: GPT, cfg: GPTConfig, runs: number, inference: InferenceEngineInfo) {
  const tfjs = await decodeFigures(model, cfg, runs, 'tfjs');
  if (inference.name === 'tfjs') return { serving: tfjs, tfjs, threads: undefined };
  const serving = await inferenceModel(model, 'ort');
  let servingFigures;
  try {
    servingFigures = await decodeFigures(serving, cfg, runs, `ort (${inference.threads} thread(s))`);
  } finally {
    serving.dispose();
  }
  const threads = [];
  for (const t of [1, 2]) {
    const m = await inferenceModel(model, 'ort', { threads: t });
    try {
      const d = await measureDecode(m, cfg, runs, idSource(1234, cfg.vocabSize), { log: (line) => log(`ort ${t} thread(s): ${line}`) });
      threads.push({ threads: t, decode_tokens_per_s: d.cached_tokens_per_s, decode_batch8_tokens_per_s: d.batch8_tokens_per_s! });
    } finally {
      m.dispose();
    }
  }
  return { serving: servingFigures, tfjs, threads };
}

async function bench(preset: PresetName, runs: number, skipTrain: boolean, torch: boolean): Promise<BenchResult> {
  const engine = await initEngine();
  const inference = await initInference({ log });
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
    const { serving: decode, tfjs, threads } = await measureEngines(model, cfg, runs, inference);
    deviations = skipTrain ? ['training not measured (--skip-train)', ...decode.deviations] : [...decode.deviations];
    const pytorch = torch ? await measureTorch(cfg, runs, log) : undefined;
    if (pytorch?.reason) deviations.push(pytorch.reason);
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
      prefill_16_ms: decode.prefill_16_ms,
      prefill_100_ms: decode.prefill_100_ms,
      decode_cpu_tokens_per_s: decode.cached_cpu_tokens_per_s,
      decode_batch8_cpu_tokens_per_s: decode.batch8_cpu_tokens_per_s!,
      tfjs: {
        decode_tokens_per_s: tfjs.cached_tokens_per_s,
        decode_nocache_tokens_per_s: tfjs.nocache_tokens_per_s,
        decode_batch8_tokens_per_s: tfjs.batch8_tokens_per_s!,
        decode_cpu_tokens_per_s: tfjs.cached_cpu_tokens_per_s,
        decode_batch8_cpu_tokens_per_s: tfjs.batch8_cpu_tokens_per_s!,
        prefill_16_ms: tfjs.prefill_16_ms,
        prefill_100_ms: tfjs.prefill_100_ms,
      },
      ...(threads && { ort_threads: threads }),
      ...(pytorch && { pytorch: pytorch.reference }),
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
    inference_engine: {
      name: inference.name,
      reason: inference.reason,
      provider: inference.provider ?? null,
      threads: inference.threads ?? null,
      version: inference.version ?? null,
    },
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

function torchRows(ref: TorchReference | null): [string, string][] {
  if (!ref) return [['pytorch', 'not measured (see deviation)']];
  const version: [string, string] = ['pytorch', `${ref.version} (${ref.python}, BLAS ${ref.blas ?? 'unknown'})`];
  return [version, ...Object.entries(ref.by_threads).map(([t, f]): [string, string] => [
    `pytorch ${t} thread(s)`,
    `${f.decode_tokens_per_s} tok/s batch 1, ${f.decode_batch8_tokens_per_s} batch 8, ${f.decode_nocache_tokens_per_s} no cache; prefill ${f.prefill_16_ms} / ${f.prefill_100_ms} ms`,
  ])];
}

function table(r: BenchResult): string {
  const rows: [string, string][] = [
    ['backend', `${r.backend}`],
    ['preset', `${r.preset} (${r.params.toLocaleString('en-US')} params)`],
    ['train', r.train_tokens_per_s === null ? 'not measured' : `${r.train_tokens_per_s} tok/s (B=${TRAIN_BATCH}, ${r.train_step_s}s/step)`],
    ['inference engine', `${r.inference_engine.name}${r.inference_engine.provider ? ` (${r.inference_engine.provider}, ${r.inference_engine.threads} thread(s))` : ''}`],
    ['decode (KV cache)', `${r.decode_tokens_per_s} tok/s (tfjs ${r.tfjs.decode_tokens_per_s})`],
    ['decode (no cache)', `${r.decode_nocache_tokens_per_s} tok/s (tfjs ${r.tfjs.decode_nocache_tokens_per_s})`],
    ['decode (batch 8)', `${r.decode_batch8_tokens_per_s} tok/s aggregate (tfjs ${r.tfjs.decode_batch8_tokens_per_s})`],
    ['decode per CPU second', `batch 1 ${r.decode_cpu_tokens_per_s}, batch 8 ${r.decode_batch8_cpu_tokens_per_s} tok/s (tfjs ${r.tfjs.decode_cpu_tokens_per_s}, ${r.tfjs.decode_batch8_cpu_tokens_per_s})`],
    ['prefill 16 / 100', `${r.prefill_16_ms} / ${r.prefill_100_ms} ms (tfjs ${r.tfjs.prefill_16_ms} / ${r.tfjs.prefill_100_ms})`],
    ...(r.ort_threads ?? []).map((t): [string, string] => [`ort ${t.threads} thread(s)`, `${t.decode_tokens_per_s} tok/s batch 1, ${t.decode_batch8_tokens_per_s} tok/s batch 8`]),
    ...(r.pytorch === undefined ? [] : torchRows(r.pytorch)),
    ['peak RSS', `${r.peak_rss_mb} MB`],
    ['runs / cores / node', `${r.runs} / ${r.cores} / ${r.node}`],
  ];
  for (const d of r.deviations) rows.push(['deviation', d]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

function parse(argv: string[]): { json: boolean; preset: PresetName; runs: number; skipTrain: boolean; torch: boolean } | 'help' {
  const values = parseFlags(argv, {
    json: { type: 'boolean' },
    'skip-train': { type: 'boolean' },
    train: { type: 'boolean' },
    torch: { type: 'boolean' },
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
  return { json: Boolean(values.json), preset, runs, skipTrain: Boolean(values['skip-train']) || (preset === 'gpt2' && !values.train), torch: Boolean(values.torch) };
}

async function main(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const result = await bench(args.preset, args.runs, args.skipTrain, args.torch);
  log(`done in ${result.wall_s}s`);
  process.stdout.write((args.json ? JSON.stringify(result) : table(result)) + '\n');
}

runCommand('bench:model', () => main(process.argv.slice(2)));
