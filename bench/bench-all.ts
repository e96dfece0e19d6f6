/**
 * `npm run bench -- [--json] [--markdown FILE] [--only train,decode,streams,swap,memory,training] ...`
 *
 * The whole system's figures in one run, for one preset: the model alone (training tokens/s, decode
 * with and without the KV cache: bench/lib/model-measure.ts), then a real server started in this process on
 * 127.0.0.1:0 with in-memory PGlite (lib/local-server.ts) driven over WebSocket: aggregate tokens/s
 * and latency at several concurrencies, the pause a hot swap causes, RSS and engine tensors across many
 * generated tokens, and latency while the server trains (when it can). Each section is in sections/.
 *
 * Progress goes to stderr. With --json stdout is one JSON object; otherwise a markdown table (also
 * written to --markdown FILE). A section that fails is reported as { error } and the exit code is 1;
 * one that cannot run here as { skipped }. Bad flags exit 2.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PRESET_NAMES, type PresetName } from '../model/gpt/config.ts';
import { checkpointFlag, choiceFlag, intFlag, intListFlag, parseCommandLine, runCommand, writeStdout, subsetFlag } from './lib/cli.ts';
import { backendInfo, machineInfo, type MachineInfo } from './lib/machine.ts';
import { startLocalServer, type LocalServer } from './lib/local-server.ts';
import { round } from './lib/stats.ts';
import { connectClients, closeClients } from './lib/ws-client.ts';
import { markdown } from './report.ts';
import { benchMemory, type MemoryFigures } from './sections/memory.ts';
import { benchModel, type ModelSections } from './sections/model.ts';
import { benchStreams, chatRound, type StreamsFigures } from './sections/streams.ts';
import { benchSwap, type SwapFigures } from './sections/swap.ts';
import { adminTrainStarter, duringTraining, type Skipped, type TrainingFigures } from './sections/training.ts';
import type { TrainFigures } from './lib/model-measure.ts';
import type { ParallelFigure } from './lib/parallel-measure.ts';

export const SECTIONS = ['train', 'decode', 'streams', 'swap', 'memory', 'training'] as const;
export type Section = (typeof SECTIONS)[number];
const SERVER_SECTIONS: Section[] = ['streams', 'swap', 'memory', 'training'];

const USAGE = `usage: npm run bench -- [--json] [--markdown FILE] [--only ${SECTIONS.join(',')}]
  [--preset ${PRESET_NAMES.join('|')}] [--checkpoint DIR] [--runs N] [--concurrency 1,4,8,16] [--rounds N]
  [--max-new-tokens N] [--streams N] [--swaps N] [--memory-tokens N] [--training-rounds N] [--timeout-s N]

  --only             sections to run (default: all)
  --preset           model size: train/decode use a random model of it; the server serves a random one
                     too unless --checkpoint is given (default small)
  --checkpoint DIR   serve this checkpoint instead of a random model
  --runs             train steps and decode runs, medians reported (default 3)
  --concurrency      concurrent streams per streams level (default 1,4,8,16)
  --rounds           measured rounds per level, after three warm-up rounds (default 10)
  --max-new-tokens   tokens per reply (default 64)
  --streams          concurrent streams during the swap and memory sections (default 8)
  --swaps            model activations during the swap section (default 3)
  --memory-tokens    tokens generated between the two memory readings (default 10000)
  --training-rounds  rounds of one stream measured while a training run is running (default 30)
  --timeout-s        stop with an error after this long (default 1800)`;

type Outcome<T> = T | { error: string } | Skipped;

export interface BenchReport {
  bench: 'rlhf-chat';
  started_at: string;
  wall_s: number;
  ok: boolean;
  machine: MachineInfo;
  preset: PresetName;
  sections: Section[];
  settings: Record<string, number | number[] | string | null>;
  /** Parameters of the preset's model measured by train/decode. */
  params: number | null;
  server_model: LocalServer['model'] | null;
  train?: Outcome<TrainFigures & { runs: number; data_parallel: ParallelFigure[] }>;
  decode?: Outcome<NonNullable<ModelSections['decode']>>;
  streams?: Outcome<StreamsFigures>;
  swap?: Outcome<SwapFigures>;
  memory?: Outcome<MemoryFigures>;
  training?: Outcome<TrainingFigures>;
}

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

function parse(argv: string[]) {
  const v = parseCommandLine(argv, {
    json: { type: 'boolean' },
    markdown: { type: 'string' },
    only: { type: 'string' },
    preset: { type: 'string' },
    checkpoint: { type: 'string' },
    runs: { type: 'string' },
    concurrency: { type: 'string' },
    rounds: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    streams: { type: 'string' },
    swaps: { type: 'string' },
    'memory-tokens': { type: 'string' },
    'training-rounds': { type: 'string' },
    'timeout-s': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  return {
    help: Boolean(v.help),
    json: Boolean(v.json),
    markdown: v.markdown === undefined ? null : resolve(v.markdown),
    only: subsetFlag('only', v.only, SECTIONS),
    preset: choiceFlag('preset', v.preset, PRESET_NAMES, 'small'),
    checkpoint: checkpointFlag('checkpoint', v.checkpoint),
    runs: intFlag('runs', v.runs, 1, 20, 3),
    concurrency: intListFlag('concurrency', v.concurrency, 1, 64, [1, 4, 8, 16]),
    rounds: intFlag('rounds', v.rounds, 1, 100, 10),
    maxNewTokens: intFlag('max-new-tokens', v['max-new-tokens'], 1, 1024, 64),
    streams: intFlag('streams', v.streams, 1, 64, 8),
    swaps: intFlag('swaps', v.swaps, 1, 20, 3),
    memoryTokens: intFlag('memory-tokens', v['memory-tokens'], 1, 1_000_000, 10_000),
    trainingRounds: intFlag('training-rounds', v['training-rounds'], 1, 1000, 30),
    timeoutS: intFlag('timeout-s', v['timeout-s'], 10, 24 * 3600, 1800),
  };
}

async function section<T>(name: Section, fn: () => Promise<T | Skipped>): Promise<Outcome<T>> {
  const t0 = performance.now();
  log(`${name}: start`);
  try {
    const out = await fn();
    log(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    return out;
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    log(`${name}: FAILED: ${message}`);
    return { error: message };
  }
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: --timeout-s ${args.timeoutS} reached; stopping\n`);
    process.exit(1);
  }, args.timeoutS * 1000);
  watchdog.unref();

  const started = performance.now();
  const has = (s: Section) => args.only.includes(s);
  const report: BenchReport = {
    bench: 'rlhf-chat',
    started_at: new Date().toISOString(),
    wall_s: 0,
    ok: true,
    machine: machineInfo(),
    preset: args.preset,
    sections: args.only,
    settings: {
      runs: args.runs,
      concurrency: args.concurrency,
      rounds: args.rounds,
      max_new_tokens: args.maxNewTokens,
      streams: args.streams,
      swaps: args.swaps,
      memory_tokens: args.memoryTokens,
      training_rounds: args.trainingRounds,
      checkpoint: args.checkpoint,
    },
    params: null,
    server_model: null,
  };
  log(`${report.machine.cores} cores, ${report.machine.cpu_model}, load ${report.machine.loadavg_1m_at_start}; sections ${args.only.join(', ')}`);

  if (has('train') || has('decode')) {
    try {
      const m = await benchModel(args.preset, args.runs, { train: has('train'), decode: has('decode') }, log);
      report.machine.tfjs_backend = backendInfo(m.engine);
      report.params = m.params;
      if (m.train) report.train = m.train;
      if (m.decode) report.decode = m.decode;
    } catch (err) {
      const error = (err as Error).message.split('\n')[0];
      log(`model: FAILED: ${error}`);
      if (has('train')) report.train = { error };
      if (has('decode')) report.decode = { error };
    }
  }

  if (SERVER_SECTIONS.some(has)) {
    let local: LocalServer | null = null;
    try {
      local = await startLocalServer(args.checkpoint ? { kind: 'checkpoint', dir: args.checkpoint } : { kind: 'random', preset: args.preset }, { log });
    } catch (err) {
      const error = `server did not start: ${(err as Error).message.split('\n')[0]}`;
      log(error);
      for (const s of SERVER_SECTIONS) if (has(s)) report[s] = { error };
    }
    if (local) {
      const server = local;
      try {
        report.server_model = server.model;
        report.machine.tfjs_backend ??= backendInfo(server.server.deps.engine.engine);
        log(`server ${server.url} serving ${server.model.source === 'checkpoint' ? server.model.checkpoint : `a random ${server.model.preset} model`}`);
        const timeoutMs = 120_000;
        if (has('streams')) {
          report.streams = await section('streams', () => benchStreams(server.url, { levels: args.concurrency, rounds: args.rounds, maxNewTokens: args.maxNewTokens, timeoutMs }, log));
        }
        if (has('swap')) {
          report.swap = await section('swap', () => benchSwap(server, { swaps: args.swaps, streams: args.streams, maxNewTokens: args.maxNewTokens, intervalMs: 1000, timeoutMs }, log));
        }
        if (has('memory')) {
          report.memory = await section('memory', () => benchMemory(server, { tokens: args.memoryTokens, streams: args.streams, maxNewTokens: args.maxNewTokens, timeoutMs }, log));
        }
        if (has('training')) {
          report.training = await section('training', async () => {
            const clients = await connectClients(server.url, 1, { timeoutMs, prefix: 'train' });
            try {
              const decoding = { strategy: 'greedy' as const, max_new_tokens: args.maxNewTokens };
              return await duringTraining(adminTrainStarter(server.url, server.adminToken, { log }), (r) => chatRound(clients, decoding, r), { rounds: args.trainingRounds, log });
            } finally {
              closeClients(clients);
            }
          });
        }
      } finally {
        await server.close().catch((err: Error) => log(`server close failed: ${err.message}`));
      }
    }
  }

  report.ok = SECTIONS.every((s) => {
    const v = report[s] as object | undefined;
    return v === undefined || !('error' in v);
  });
  report.wall_s = round((performance.now() - started) / 1000, 1);
  log(`done in ${report.wall_s}s${report.ok ? '' : ' (with errors)'}`);
  const table = markdown(report);
  if (args.markdown) await writeFile(args.markdown, table);
  await writeStdout(args.json ? JSON.stringify(report) + '\n' : table);
  return report.ok ? 0 : 1;
}

runCommand('bench', () => main(process.argv.slice(2)));
