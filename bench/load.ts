/**
 * `npm run load -- --clients N --seconds S [--json] [--url http://127.0.0.1:PORT | --preset tiny|small |
 *   --checkpoint DIR] [--max-new-tokens N] [--regenerate P] [--rate P] [--seed N]`
 *
 * N simulated users (lib/chat-user.ts: one session and WebSocket each) chat for S seconds with mixed
 * greedy / sampling / beam search, regenerate sometimes and rate replies (POST
 * /api/messages/:id/rating). Requests sent before the end run to completion. Reports requests completed
 * and failed (by reason), latency percentiles (time to first token, total, rating), tokens/s, and
 * memory at start and end.
 *
 * The target is a running server at a loopback --url, or one started here (in-process, 127.0.0.1:0,
 * embedded in-memory PGlite) serving --checkpoint, a random --preset model, or by default the shipped
 * chat model (models/default/policy; a random small model when it is absent). Memory: for a server
 * started here, the process's RSS (server and clients) and the engine's tensor count; for --url, the
 * server's RSS from /metrics (process_resident_memory_bytes) and no tensor count (null).
 */
import { loadavg } from 'node:os';
import * as perfHooks from 'node:perf_hooks';
import { checkpointFlag, choiceFlag, intFlag, loopbackUrlFlag, numberFlag, parseCommandLine, runCommand, writeStdout, UsageError } from './lib/cli.ts';
import { runUser, type UserLog } from './lib/chat-user.ts';
import { shippedCheckpoint, startLocalServer, type LocalServer, type ModelChoice } from './lib/local-server.ts';
import { distribution, mib, round, type Distribution } from './lib/stats.ts';
import { countReasons, summarize, type RequestSummary } from './lib/summary.ts';
import { closeClients, connectClients } from './lib/ws-client.ts';
import { idleSnapshot } from './sections/memory.ts';

const USAGE = `usage: npm run load -- --clients N --seconds S [--json]
  [--url http://127.0.0.1:PORT | --preset tiny|small | --checkpoint DIR]
  [--max-new-tokens N] [--regenerate P] [--rate P] [--seed N]

  --clients          simulated users, 1..256 (default 4)
  --seconds          how long they send requests, 1..3600 (default 30)
  --url              a running server on this machine (loopback only); otherwise one is started here
  --preset           serve a random model of this size (tiny or small)
  --checkpoint DIR   serve this checkpoint (default: models/default/policy)
  --max-new-tokens   tokens per reply, 1..1024 (default 48)
  --regenerate       probability a request regenerates the last reply, 0..1 (default 0.2)
  --rate             probability a reply is rated, 0..1 (default 0.5)
  --seed             seed of the users' choices (default 1)`;

const log = (line: string): void => void process.stderr.write(`[load] ${line}\n`);

function parse(argv: string[]) {
  const v = parseCommandLine(argv, {
    clients: { type: 'string' },
    seconds: { type: 'string' },
    url: { type: 'string' },
    preset: { type: 'string' },
    checkpoint: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    regenerate: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  const exclusive = (['url', 'preset', 'checkpoint'] as const).filter((k) => v[k] !== undefined);
  if (exclusive.length > 1) throw new UsageError(`--${exclusive[0]} and --${exclusive[1]} cannot be combined: give a server --url, or a model for a server started here`);
  return {
    help: Boolean(v.help),
    json: Boolean(v.json),
    clients: intFlag('clients', v.clients, 1, 256, 4),
    seconds: intFlag('seconds', v.seconds, 1, 3600, 30),
    url: v.url === undefined ? null : loopbackUrlFlag('url', v.url),
    preset: v.preset === undefined ? null : choiceFlag('preset', v.preset, ['tiny', 'small'] as const, 'small'),
    checkpoint: checkpointFlag('checkpoint', v.checkpoint),
    maxNewTokens: intFlag('max-new-tokens', v['max-new-tokens'], 1, 1024, 48),
    regenerate: numberFlag('regenerate', v.regenerate, 0, 1, 0.2),
    rate: numberFlag('rate', v.rate, 0, 1, 0.5),
    seed: intFlag('seed', v.seed, 0, 2 ** 31 - 1, 1),
  };
}

interface Memory {
  rss_mb: number | null;
  num_tensors: number | null;
}

/** The RSS of a server elsewhere, from its Prometheus text. */
async function metricsMemory(url: string): Promise<Memory> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) return { rss_mb: null, num_tensors: null };
  const text = await res.text();
  const gauge = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  const rss = gauge('process_resident_memory_bytes');
  // The engine's tensor count is not among the server's metrics; only a server started here has it.
  return { rss_mb: rss === null ? null : mib(rss), num_tensors: null };
}

export interface LoadReport {
  load: 'rlhf-chat';
  started_at: string;
  target: { url: string; started_here: boolean; model: LocalServer['model'] | null };
  clients: number;
  seconds: number;
  settings: { max_new_tokens: number; regenerate: number; rate: number; seed: number; mix: string };
  loadavg_1m_at_start: number;
  /** From the first request to the last reply's end. */
  elapsed_s: number;
  requests: {
    completed: number;
    failed: number;
    failed_by_reason: Record<string, number>;
    by_kind: Record<'chat' | 'regenerate' | 'rating', { completed: number; failed: number }>;
    by_strategy: Record<string, { completed: number; failed: number }>;
  };
  latency_ms: { ttft: Distribution | null; total: Distribution | null; inter_token: Distribution | null; rating: Distribution | null };
  tokens: { completion_tokens: number; tokens_per_s: number };
  memory: { source: 'process' | 'metrics'; start: Memory; end: Memory };
  /** The engine that generated (from /health). */
  inference_engine: string | null;
  /**
   * Where the time went, for a server started here: the engine worker's prefill and step time, and
   * how busy this process's main thread was (it runs the simulated users and the sockets) and the
   * embedded database's thread (the time its queries took: one thread runs them one at a time).
   */
  time: {
    prefill_s: number;
    step_s: number;
    prefills: number;
    prefill_rows: number;
    steps: number;
    engine_busy_share: number;
    /** The engine worker thread: forward passes plus decoding, logit processing and messages. */
    engine_thread_busy_share: number;
    main_thread_busy_share: number;
    database_queries: number | null;
    database_busy_share: number | null;
  } | null;
}

function report(logs: UserLog[], elapsedS: number): Pick<LoadReport, 'requests' | 'latency_ms' | 'tokens'> {
  const reqs = logs.flatMap((l) => l.requests);
  const ratings = logs.flatMap((l) => l.ratings);
  const s: RequestSummary = summarize(reqs);
  const okRatings = ratings.filter((r) => r.code === null);
  const badRatings = ratings.filter((r) => r.code !== null);
  const count = (xs: typeof reqs) => ({ completed: xs.filter((r) => !r.error).length, failed: xs.filter((r) => r.error).length });
  const byStrategy: Record<string, { completed: number; failed: number }> = {};
  for (const strategy of [...new Set(reqs.map((r) => r.strategy))].sort()) byStrategy[strategy] = count(reqs.filter((r) => r.strategy === strategy));
  const failedByReason = { ...s.failed_by_reason };
  for (const [code, n] of Object.entries(countReasons(badRatings.map((r) => `rating_${r.code}`)))) failedByReason[code] = n;
  return {
    requests: {
      completed: s.completed + okRatings.length,
      failed: s.failed + badRatings.length,
      failed_by_reason: failedByReason,
      by_kind: {
        chat: count(reqs.filter((r) => r.kind === 'chat')),
        regenerate: count(reqs.filter((r) => r.kind === 'regenerate')),
        rating: { completed: okRatings.length, failed: badRatings.length },
      },
      by_strategy: byStrategy,
    },
    latency_ms: { ttft: s.ttft_ms, total: s.total_ms, inter_token: s.inter_token_ms, rating: distribution(okRatings.map((r) => r.ms)) },
    tokens: { completion_tokens: s.completion_tokens, tokens_per_s: elapsedS > 0 ? round(s.completion_tokens / elapsedS, 1) : 0 },
  };
}

function summaryText(r: LoadReport): string {
  const d = (x: Distribution | null) => (x ? `p50 ${x.p50} ms, p90 ${x.p90} ms, p99 ${x.p99} ms, max ${x.max} ms` : '—');
  const mem = (m: Memory) => `RSS ${m.rss_mb ?? '—'} MB, ${m.num_tensors ?? '—'} tensors`;
  const reasons = Object.entries(r.requests.failed_by_reason).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const k = r.requests.by_kind;
  return [
    `load: ${r.clients} clients for ${r.seconds}s against ${r.target.url}${r.target.started_here ? ` (started here, ${r.target.model?.source === 'checkpoint' ? r.target.model.checkpoint : `random ${r.target.model?.preset}`})` : ''}`,
    `  requests     ${r.requests.completed} completed, ${r.requests.failed} failed (${reasons})`,
    `               chat ${k.chat.completed}/${k.chat.failed}, regenerate ${k.regenerate.completed}/${k.regenerate.failed}, rating ${k.rating.completed}/${k.rating.failed} (completed/failed)`,
    `  ttft         ${d(r.latency_ms.ttft)}`,
    `  total        ${d(r.latency_ms.total)}`,
    `  inter-token  ${d(r.latency_ms.inter_token)}`,
    `  rating       ${d(r.latency_ms.rating)}`,
    `  tokens       ${r.tokens.completion_tokens} in ${r.elapsed_s}s = ${r.tokens.tokens_per_s} tokens/s`,
    `  memory       start ${mem(r.memory.start)}; end ${mem(r.memory.end)} (${r.memory.source})`,
    `  engine       ${r.inference_engine ?? '—'}${r.time ? `: prefill ${r.time.prefill_s}s (${r.time.prefills} calls, ${r.time.prefill_rows} rows), step ${r.time.step_s}s (${r.time.steps} steps), busy ${r.time.engine_busy_share} (its thread ${r.time.engine_thread_busy_share}); main thread busy ${r.time.main_thread_busy_share}; database ${r.time.database_queries ?? '—'} queries, busy ${r.time.database_busy_share ?? '—'}` : ''}`,
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const startedAt = new Date().toISOString();
  const load = round(loadavg()[0], 2);
  let local: LocalServer | null = null;
  let url: string;
  if (args.url) {
    url = args.url;
    const health = await fetch(`${url}/health`).catch((err: Error) => {
      throw new Error(`--url: no server answers at ${url} (${(err.cause as Error | undefined)?.message ?? err.message})`);
    });
    if (!health.ok) throw new Error(`--url: ${url}/health answered ${health.status}; the server is not ready`);
  } else {
    const shipped = shippedCheckpoint();
    const choice: ModelChoice = args.checkpoint
      ? { kind: 'checkpoint', dir: args.checkpoint }
      : args.preset
        ? { kind: 'random', preset: args.preset }
        : shipped
          ? { kind: 'checkpoint', dir: shipped }
          : { kind: 'random', preset: 'small' };
    local = await startLocalServer(choice, { log });
    url = local.url;
  }
  const server = local;
  try {
    const memory = async (): Promise<Memory> => {
      if (!server) return metricsMemory(url);
      const snap = await idleSnapshot(server);
      return { rss_mb: snap.rss_mb, num_tensors: snap.num_tensors };
    };
    const start = await memory();
    const health = (await (await fetch(`${url}/health`)).json()) as { inference_engine?: { name: string } };
    const engineBefore = server ? await server.server.deps.engine.stats() : null;
    const databaseBefore = server?.databaseStats() ?? null;
    const eluBefore = perfHooks.performance.eventLoopUtilization();
    log(`${args.clients} clients for ${args.seconds}s against ${url}`);
    const clients = await connectClients(url, args.clients, { timeoutMs: 120_000, prefix: 'u' });
    let logs: UserLog[];
    const t0 = performance.now();
    try {
      const deadline = t0 + args.seconds * 1000;
      const opts = { maxNewTokens: args.maxNewTokens, regenerate: args.regenerate, rate: args.rate };
      logs = await Promise.all(clients.map((c, i) => runUser(c, { ...opts, seed: args.seed * 1000 + i }, deadline)));
    } finally {
      closeClients(clients);
    }
    const elapsedS = (performance.now() - t0) / 1000;
    const elu = perfHooks.performance.eventLoopUtilization(eluBefore);
    const engineAfter = server ? await server.server.deps.engine.stats() : null;
    const databaseAfter = server?.databaseStats() ?? null;
    const end = await memory();
    const time =
      engineBefore && engineAfter
        ? {
            prefill_s: round((engineAfter.prefillMs - engineBefore.prefillMs) / 1000, 2),
            step_s: round((engineAfter.stepMs - engineBefore.stepMs) / 1000, 2),
            prefills: engineAfter.prefills - engineBefore.prefills,
            prefill_rows: engineAfter.prefillRows - engineBefore.prefillRows,
            steps: engineAfter.steps - engineBefore.steps,
            engine_busy_share: round((engineAfter.prefillMs - engineBefore.prefillMs + engineAfter.stepMs - engineBefore.stepMs) / 1000 / elapsedS, 3),
            engine_thread_busy_share: round((engineAfter.busyMs - engineBefore.busyMs) / 1000 / elapsedS, 3),
            main_thread_busy_share: round(elu.utilization, 3),
            database_queries: databaseBefore && databaseAfter ? databaseAfter.queries - databaseBefore.queries : null,
            database_busy_share: databaseBefore && databaseAfter ? round((databaseAfter.busyMs - databaseBefore.busyMs) / 1000 / elapsedS, 3) : null,
          }
        : null;
    const out: LoadReport = {
      load: 'rlhf-chat',
      started_at: startedAt,
      target: { url, started_here: server !== null, model: server?.model ?? null },
      clients: args.clients,
      seconds: args.seconds,
      settings: { max_new_tokens: args.maxNewTokens, regenerate: args.regenerate, rate: args.rate, seed: args.seed, mix: 'greedy 40%, sample 40%, beam_search 20%' },
      loadavg_1m_at_start: load,
      elapsed_s: round(elapsedS, 2),
      ...report(logs, elapsedS),
      memory: { source: server ? 'process' : 'metrics', start, end },
      inference_engine: health.inference_engine?.name ?? null,
      time,
    };
    await writeStdout(args.json ? JSON.stringify(out) + '\n' : summaryText(out));
    return 0;
  } finally {
    await server?.close().catch((err: Error) => log(`server close failed: ${err.message}`));
  }
}

runCommand('load', () => main(process.argv.slice(2)));
