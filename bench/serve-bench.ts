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
import { parseArgs } from 'node:util';
import { runCommand } from './lib/cli.ts';
import { shippedCheckpoint, startLocalServer, type ModelChoice } from './lib/local-server.ts';
import { percentile } from './lib/stats.ts';
import { closeClients, connectClients, deltaGaps, ttftMs, type RequestResult } from './lib/ws-client.ts';

const log = (line: string) => void process.stderr.write(`[bench:serve] ${line}\n`);

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    checkpoint: { type: 'string' },
    preset: { type: 'string', default: 'small' },
    url: { type: 'string' },
    concurrency: { type: 'string', default: '1,8' },
    rounds: { type: 'string', default: '3' },
    'max-new-tokens': { type: 'string', default: '64' },
    'timeout-s': { type: 'string', default: '300' },
  },
  strict: true,
});

const levels = args.concurrency.split(',').map(Number);
const rounds = Number(args.rounds);
const maxNewTokens = Number(args['max-new-tokens']);
if (levels.some((n) => !Number.isInteger(n) || n < 1 || n > 64) || !(rounds >= 1 && rounds <= 20) || !(maxNewTokens >= 1 && maxNewTokens <= 1024)) {
  process.stderr.write('bench:serve: --concurrency must list integers in [1, 64], --rounds in [1, 20], --max-new-tokens in [1, 1024]\n');
  process.exit(2);
}
const deadline = Date.now() + Number(args['timeout-s']) * 1000;

const round2 = (x: number) => Math.round(x * 100) / 100;
const PROMPTS = ['how are you ?', 'what is your name ?', 'tell me a story .', 'where do you live ?'];

/** (last delta − first delta) / (tokens − 1): the stream's mean time per token after the first. */
function msPerToken(r: RequestResult): number {
  const first = r.deltaTimes[0];
  const last = r.deltaTimes[r.deltaTimes.length - 1];
  return r.tokens > 1 && first !== undefined ? (last - first) / (r.tokens - 1) : NaN;
}

/** One round: every client sends a greedy chat at once; a failed stream fails the benchmark. */
async function chatRound(clients: Awaited<ReturnType<typeof connectClients>>): Promise<RequestResult[]> {
  const got = await Promise.all(clients.map((c, i) => c.chat(PROMPTS[i % PROMPTS.length], { strategy: 'greedy', max_new_tokens: maxNewTokens })));
  const failed = got.find((r) => r.error !== null);
  if (failed) throw new Error(`stream ${failed.id}: ${failed.error!.code}: ${failed.error!.message}`);
  return got;
}

async function runLevel(url: string, n: number) {
  const clients = await connectClients(url, n, { timeoutMs: Math.max(1000, deadline - Date.now()), prefix: `c${n}-` });
  try {
    await chatRound(clients); // warm-up
    const streams: RequestResult[] = [];
    const throughputs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (Date.now() > deadline) throw new Error('--timeout-s reached');
      const got = await chatRound(clients);
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

async function main(): Promise<void> {
  let url = args.url;
  let stop = async () => {};
  let model: Record<string, unknown> = { url };
  if (url) {
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname)) throw new Error('--url must be a loopback address (127.0.0.1, localhost, [::1])');
  } else {
    if (!args.checkpoint && !shippedCheckpoint() && args.preset !== 'small' && args.preset !== 'tiny') throw new Error('--preset must be small or tiny');
    const checkpoint = args.checkpoint ?? shippedCheckpoint();
    const choice: ModelChoice = checkpoint ? { kind: 'checkpoint', dir: checkpoint } : { kind: 'random', preset: args.preset as 'small' | 'tiny' };
    const local = await startLocalServer(choice, { log, env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' } });
    url = local.url;
    const { config } = local.server.deps;
    model = { checkpoint: local.model.checkpoint, params: local.model.params, config: local.model.config, backend: local.server.deps.engine.engine.name, engine_max_rows: config.engine.maxRows };
    stop = () => local.close();
  }
  try {
    log(`server ${url}; ${rounds} rounds per level, max_new_tokens ${maxNewTokens}, greedy`);
    const results = [];
    for (const n of levels) results.push(await runLevel(url, n));
    const out = { bench: 'serve', url, model, max_new_tokens: maxNewTokens, rounds, levels: results };
    process.stdout.write(args.json ? JSON.stringify(out) + '\n' : JSON.stringify(out, null, 2) + '\n');
  } finally {
    await stop();
  }
}

runCommand('bench:serve', main);
