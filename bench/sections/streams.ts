/**
 * `streams`: aggregate tokens/s, time to first token and inter-token latency at several numbers of
 * concurrent WebSocket streams. First the whole server is warmed up at the highest level; then per
 * level: that many clients (one session and socket each) send a greedy chat at the same moment, three
 * unmeasured warm-up rounds, then `rounds` measured rounds; tokens/s
 * of a round = completion tokens / (last done − first send), reported as the median over rounds.
 * Concurrency 1 is the idle latency: one stream alone on the server.
 */
import type { Decoding } from '../../server/protocol.ts';
import { median, round } from '../lib/stats.ts';
import { summarize, type RequestSummary } from '../lib/summary.ts';
import { closeClients, connectClients, PROMPTS, type BenchClient, type RequestResult } from '../lib/ws-client.ts';

interface StreamsOptions {
  levels: number[];
  rounds: number;
  maxNewTokens: number;
  timeoutMs: number;
}

interface LevelFigures extends RequestSummary {
  concurrency: number;
  tokens_per_s: number | null;
  tokens_per_stream: number | null;
}

export interface StreamsFigures {
  strategy: 'greedy';
  max_new_tokens: number;
  rounds: number;
  levels: LevelFigures[];
  /** Concurrency 1: TTFT and inter-token latency with nothing else running. */
  idle: Pick<RequestSummary, 'ttft_ms' | 'inter_token_ms'> | null;
}

/** Every client sends one chat at once; resolves when all have ended. */
const WARMUP_ROUNDS = 3;

export function chatRound(clients: BenchClient[], decoding: Decoding, r: number): Promise<RequestResult[]> {
  return Promise.all(clients.map((c, i) => c.chat(PROMPTS[(i + r) % PROMPTS.length], decoding)));
}

export function roundTokensPerS(results: RequestResult[]): number | null {
  const ok = results.filter((x) => x.error === null);
  if (ok.length === 0) return null;
  const wallS = (Math.max(...ok.map((x) => x.endAt)) - Math.min(...ok.map((x) => x.sentAt))) / 1000;
  return wallS > 0 ? ok.reduce((t, x) => t + x.tokens, 0) / wallS : null;
}

export async function benchStreams(url: string, opts: StreamsOptions, log: (line: string) => void): Promise<StreamsFigures> {
  const decoding: Decoding = { strategy: 'greedy', max_new_tokens: opts.maxNewTokens };
  const levels: LevelFigures[] = [];
  // Right after the server starts, a single stream ran at ~60% of the speed it has once batches have
  // run (1,300 against 2,100-2,400 tokens/s in one process): the batch and cache code is still being
  // optimised and ONNX Runtime's buffers grown. Every level is measured on a warm server instead.
  const widest = Math.max(...opts.levels);
  const warm = await connectClients(url, widest, { timeoutMs: opts.timeoutMs, prefix: 'warm-' });
  try {
    for (let w = 1; w <= WARMUP_ROUNDS; w++) await chatRound(warm, decoding, -w);
  } finally {
    closeClients(warm);
  }
  log(`streams: warmed up with ${WARMUP_ROUNDS} rounds of ${widest} streams`);
  for (const n of opts.levels) {
    const clients = await connectClients(url, n, { timeoutMs: opts.timeoutMs, prefix: `s${n}-` });
    try {
      // Warm-up: first-use allocations at this batch size, and (at the first level, right after the
      // server started) the sockets' and decoders' code still running unoptimised: after one round a
      // single stream ran at half the speed it has later in the same process.
      for (let w = 1; w <= WARMUP_ROUNDS; w++) await chatRound(clients, decoding, -w);
      const results: RequestResult[] = [];
      const rates: number[] = [];
      for (let r = 0; r < opts.rounds; r++) {
        const got = await chatRound(clients, decoding, r);
        results.push(...got);
        const rate = roundTokensPerS(got);
        if (rate !== null) rates.push(rate);
      }
      const s = summarize(results);
      const figures: LevelFigures = {
        concurrency: n,
        ...s,
        tokens_per_s: rates.length > 0 ? round(median(rates), 1) : null,
        tokens_per_stream: s.completed > 0 ? round(s.completion_tokens / s.completed, 1) : null,
      };
      levels.push(figures);
      log(
        `streams x${n}: ${figures.tokens_per_s} tok/s, ttft p50 ${s.ttft_ms?.p50} ms p99 ${s.ttft_ms?.p99} ms, ` +
          `inter-token p50 ${s.inter_token_ms?.p50} ms p99 ${s.inter_token_ms?.p99} ms, ${s.failed} failed`,
      );
    } finally {
      closeClients(clients);
    }
  }
  const one = levels.find((l) => l.concurrency === 1);
  return {
    strategy: 'greedy',
    max_new_tokens: opts.maxNewTokens,
    rounds: opts.rounds,
    levels,
    idle: one ? { ttft_ms: one.ttft_ms, inter_token_ms: one.inter_token_ms } : null,
  };
}
