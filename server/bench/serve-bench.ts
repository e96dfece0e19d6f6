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
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { loadConfig } from '../config.ts';
import { openMemoryDatabase } from '../db/index.ts';
import type { ServerFrame } from '../protocol.ts';
import { createServer } from '../server.ts';
import { checkpointFlag, choiceFlag, intFlag, intListFlag, loopbackUrlFlag, parseCommandLine, runCommand, writeStdout } from './lib/cli.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
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

/** What every stream of the run shares. */
interface RunSettings {
  rounds: number;
  maxNewTokens: number;
  /** When the whole run must end (Date.now() ms): --timeout-s from the start. */
  deadline: number;
}

interface Stream {
  ttftMs: number;
  /** (last delta − first delta) / (tokens − 1): the stream's mean time per token after the first. */
  msPerToken: number;
  gapsMs: number[];
  tokens: number;
  sentAt: number;
  doneAt: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const round2 = (x: number) => Math.round(x * 100) / 100;

async function openSocket(url: string): Promise<WebSocket> {
  const res = await fetch(`${url}/api/session`, { method: 'POST' });
  const { token } = (await res.json()) as { token: string };
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?token=${token}`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** One chat on `ws`, timed from the moment it is sent. */
function chat(ws: WebSocket, id: string, content: string, { maxNewTokens, deadline }: RunSettings): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    let last = 0;
    let first = 0;
    const gapsMs: number[] = [];
    const timer = setTimeout(() => reject(new Error(`stream ${id} timed out`)), Math.max(1000, deadline - Date.now()));
    const onMessage = (data: WebSocket.RawData) => {
      const f = JSON.parse(String(data)) as ServerFrame;
      if (!('id' in f) || f.id !== id) return;
      const now = performance.now();
      if (f.type === 'delta') {
        if (first === 0) first = now;
        else gapsMs.push(now - last);
        last = now;
      } else if (f.type === 'done' || f.type === 'error') {
        clearTimeout(timer);
        ws.off('message', onMessage);
        if (f.type === 'error') reject(new Error(`${f.code}: ${f.message}`));
        else {
          const tokens = f.usage.completion_tokens;
          resolve({ ttftMs: (first || now) - sentAt, msPerToken: tokens > 1 ? (last - first) / (tokens - 1) : NaN, gapsMs, tokens, sentAt, doneAt: now });
        }
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'chat', id, content, decoding: { strategy: 'greedy', max_new_tokens: maxNewTokens } }));
  });
}

async function runLevel(url: string, n: number, run: RunSettings) {
  const sockets = await Promise.all(Array.from({ length: n }, () => openSocket(url)));
  try {
    const prompts = ['how are you ?', 'what is your name ?', 'tell me a story .', 'where do you live ?'];
    const round = (r: number) => Promise.all(sockets.map((ws, i) => chat(ws, `c${n}-r${r}-s${i}`, prompts[i % prompts.length], run)));
    await round(-1); // warm-up
    const streams: Stream[] = [];
    const throughputs: number[] = [];
    for (let r = 0; r < run.rounds; r++) {
      if (Date.now() > run.deadline) throw new Error('--timeout-s reached');
      const got = await round(r);
      streams.push(...got);
      const wallS = (Math.max(...got.map((s) => s.doneAt)) - Math.min(...got.map((s) => s.sentAt))) / 1000;
      throughputs.push(got.reduce((t, s) => t + s.tokens, 0) / wallS);
    }
    const ttft = streams.map((s) => s.ttftMs);
    const gaps = streams.flatMap((s) => s.gapsMs);
    const perToken = streams.map((s) => s.msPerToken).filter(Number.isFinite);
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
    for (const ws of sockets) ws.close();
  }
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let url = args.url;
  let stop = async () => {};
  let model: Record<string, unknown> = { url };
  if (!url) {
    const state = await mkdtemp(join(tmpdir(), 'bench-serve-'));
    let checkpoint = args.checkpoint ?? (existsSync(join(ROOT, 'models/default/policy')) ? join(ROOT, 'models/default/policy') : undefined);
    if (!checkpoint) {
      const { initCheckpoint } = await import('../../model/cli/init-checkpoint.ts');
      log(`no checkpoint: using a randomly initialised ${args.preset} model`);
      checkpoint = await initCheckpoint({ preset: args.preset, out: join(state, 'model'), text: join(ROOT, 'tests/fixtures/wiki-sample.txt') });
    }
    const config = loadConfig({ env: { ...process.env, PORT: '0', HOST: '127.0.0.1', STATE_DIR: state, CHECKPOINT: checkpoint, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ADMIN_TOKEN: 'bench-admin-token-not-secret', RATE_LIMIT_PER_MINUTE: '100000', SHUTDOWN_GRACE_MS: '0', DATABASE_URL: '' } });
    const database = await openMemoryDatabase();
    const server = await createServer(config, { database });
    url = server.url;
    const loaded = server.deps.engine.activeModel;
    model = { checkpoint, params: loaded?.params, config: loaded?.config, backend: server.deps.engine.engine.name, engine_max_rows: config.engine.maxRows };
    stop = async () => {
      await server.close();
      await database.close();
      await rm(state, { recursive: true, force: true });
    };
  }
  const { rounds, maxNewTokens } = args;
  const run: RunSettings = { rounds, maxNewTokens, deadline: Date.now() + args.timeoutS * 1000 };
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
