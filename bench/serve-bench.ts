/**
 * `npm run bench:serve -- [--json] [--checkpoint DIR | --preset small|tiny] [--url http://127.0.0.1:PORT]
 *   [--concurrency 1,8] [--rounds 3] [--max-new-tokens 64] [--timeout-s 300]`
 *
 * Serving latency and throughput through the real WebSocket API: for each concurrency level, that
 * many users (one session and socket each) send a greedy chat at the same moment; per stream it
 * records time to first token (request sent → first delta) and the gaps between deltas (inter-token
 * latency, between WebSocket deltas: a delta holds the text of one or more tokens) and its mean time
 * per token after the first, and per round the aggregate tokens/s (completion tokens / wall time of the round). One
 * unmeasured warm-up round first. Without --url it starts its own server on a free loopback port
 * (embedded in-memory database; the given checkpoint, else models/default, else a randomly
 * initialised `--preset` model in a temporary directory). --url must be a loopback address.
 * Bounded: a fixed number of rounds and streams, and --timeout-s for the whole run.
 * Prints progress on stderr and one JSON object on the last stdout line.
 */
import { checkpointFlag, choiceFlag, intFlag, intListFlag, loopbackUrlFlag, parseCommandLine, runCommand, writeStdout } from './lib/cli.ts';
import { shippedCheckpoint, startLocalServer, type ModelChoice } from './lib/local-server.ts';
import { percentile } from './lib/stats.ts';
import { closeClients, connectClients, deltaGaps, ttftMs, type RequestResult } from './lib/ws-client.ts';

const log = (line: string) => void process.stderr.write(`[bench:serve] ${line}\n`);

const USAGE = `usage: npm run bench:serve -- [--json] [--checkpoint DIR | --preset small|tiny] [--url http://127.0.0.1:PORT]
  [--concurrency 1,8] [--rounds 3] [--max-new-tokens 64] [--timeout-s 300]`;

function parse(argv: string[]) {
  const v = parseCommandLine(argv, {
    json: { type: 'boolean' },
    checkpoint: { type: 'string' },
    preset: { type: 'string' },
    url: { type: 'string' },
    concurrency: { type: 'string' },
    rounds: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    'timeout-s': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  return {
    help: Boolean(v.help),
    json: Boolean(v.json),
    checkpoint: checkpointFlag('checkpoint', v.checkpoint),
    preset: choiceFlag('preset', v.preset, ['small', 'tiny'] as const, 'small'),
    url: v.url === undefined ? null : loopbackUrlFlag('url', v.url),
    levels: intListFlag('concurrency', v.concurrency, 1, 64, [1, 8]),
    rounds: intFlag('rounds', v.rounds, 1, 20, 3),
    maxNewTokens: intFlag('max-new-tokens', v['max-new-tokens'], 1, 1024, 64),
    timeoutS: intFlag('timeout-s', v['timeout-s'], 1, 24 * 3600, 300),
  };
}

/** What every round of the run shares. */
interface RunSettings {
  rounds: number;
  maxNewTokens: number;
  /** When the whole run must end (Date.now() ms): --timeout-s from the start. */
  deadline: number;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const PROMPTS = ['how are you ?', 'what is your name ?', 'tell me a story .', 'where do you live ?'];

/** (last delta − first delta) / (tokens − 1): the stream's mean time per token after the first. */
function msPerToken(r: RequestResult): number {
  const first = r.deltaTimes[0];
  const last = r.deltaTimes[r.deltaTimes.length - 1];
  return r.tokens > 1 && first !== undefined ? (last - first) / (r.tokens - 1) : NaN;
}

/** One round: every client sends a greedy chat at once; a failed stream fails the benchmark. */
async function chatRound(clients: Awaited<ReturnType<typeof connectClients>>, { maxNewTokens }: RunSettings): Promise<RequestResult[]> {
  const got = await Promise.all(clients.map((c, i) => c.chat(PROMPTS[i % PROMPTS.length], { strategy: 'greedy', max_new_tokens: maxNewTokens })));
  const failed = got.find((r) => r.error !== null);
  if (failed) throw new Error(`stream ${failed.id}: ${failed.error!.code}: ${failed.error!.message}`);
  return got;
}

async function runLevel(url: string, n: number, run: RunSettings) {
  const clients = await connectClients(url, n, { timeoutMs: Math.max(1000, run.deadline - Date.now()), prefix: `c${n}-` });
  try {
    await chatRound(clients, run); // warm-up
    const streams: RequestResult[] = [];
    const throughputs: number[] = [];
    for (let r = 0; r < run.rounds; r++) {
      if (Date.now() > run.deadline) throw new Error('--timeout-s reached');
      const got = await chatRound(clients, run);
      streams.push(...got);
      const wallS = (Math.max(...got.map((s) => s.endAt)) - Math.min(...got.map((s) => s.sentAt))) / 1000;
      throughputs.push(got.reduce((t, s) => t + s.tokens, 0) / wallS);
    }
    const ttft = streams.map((s) => ttftMs(s) ?? s.endAt - s.sentAt);
    const gaps = streams.flatMap((s) => deltaGaps(s).map(([a, b]) => b - a));
    const perToken = streams.map(msPerToken).filter(Number.isFinite);
    const result = {
      concurrency: n,
      streams: streams.length,
      completion_tokens: streams.reduce((t, s) => t + s.tokens, 0),
      ttft_ms: { p50: round2(percentile(ttft, 50)), p99: round2(percentile(ttft, 99)) },
      inter_token_ms: { p50: round2(percentile(gaps, 50)), p99: round2(percentile(gaps, 99)) },
      stream_ms_per_token: { p50: round2(percentile(perToken, 50)), p99: round2(percentile(perToken, 99)) },
      tokens_per_s: round2(percentile(throughputs, 50)),
    };
    log(`${n} concurrent: ttft p50 ${result.ttft_ms.p50} ms p99 ${result.ttft_ms.p99} ms, inter-token p50 ${result.inter_token_ms.p50} ms p99 ${result.inter_token_ms.p99} ms, ${result.tokens_per_s} tokens/s`);
    return result;
  } finally {
    closeClients(clients);
  }
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (args.help) {
    await writeStdout(USAGE + '\n');
    return 0;
  }
  const { rounds, maxNewTokens } = args;
  const run: RunSettings = { rounds, maxNewTokens, deadline: Date.now() + args.timeoutS * 1000 };
  let url = args.url;
  let stop = async () => {};
  let model: Record<string, unknown> = { url };
  if (!url) {
    const checkpoint = args.checkpoint ?? shippedCheckpoint();
    const choice: ModelChoice = checkpoint ? { kind: 'checkpoint', dir: checkpoint } : { kind: 'random', preset: args.preset };
    const local = await startLocalServer(choice, { log, env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' } });
    url = local.url;
    const { config } = local.server.deps;
    model = { checkpoint: local.model.checkpoint, params: local.model.params, config: local.model.config, backend: local.server.deps.engine.engine.name, engine_max_rows: config.engine.maxRows };
    stop = () => local.close();
  }
  try {
    log(`server ${url}; ${rounds} rounds per level, max_new_tokens ${maxNewTokens}, greedy`);
    const results = [];
    for (const n of args.levels) results.push(await runLevel(url, n, run));
    const out = { bench: 'serve', url, model, max_new_tokens: maxNewTokens, rounds, levels: results };
    await writeStdout(args.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
    return 0;
  } finally {
    await stop();
  }
}

runCommand('bench:serve', main);
