/**
 * `memory`: whether serving leaks. The process's RSS and the engine worker's tf.memory().numTensors
 * (deps.engine.stats()) with the engine idle, before and after generating `tokens` completion tokens
 * through concurrent streams that mix greedy, sampling and beam search (each path keeps its own
 * caches). One warm-up round of each strategy comes first, so first-use allocations count as before.
 * RSS is the whole process: server, engine worker and these clients (and, after train/decode, the main
 * thread's own engine), so its delta is the figure to read; a tensor delta above 0 is a leak.
 */
import type { Decoding } from '../../server/protocol.ts';
import type { LocalServer } from '../lib/local-server.ts';
import { mib, round } from '../lib/stats.ts';
import { summarize, type RequestSummary } from '../lib/summary.ts';
import { closeClients, connectClients, PROMPTS, type RequestResult } from '../lib/ws-client.ts';

interface MemoryOptions {
  tokens: number;
  streams: number;
  maxNewTokens: number;
  timeoutMs: number;
}

interface MemorySnapshot {
  rss_mb: number;
  heap_used_mb: number;
  num_tensors: number;
}

export interface MemoryFigures {
  target_tokens: number;
  generated_tokens: number;
  streams: number;
  before: MemorySnapshot;
  after: MemorySnapshot;
  rss_delta_mb: number;
  num_tensors_delta: number;
  requests: RequestSummary;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the engine has nothing running or queued, then reads memory. */
export async function idleSnapshot(local: LocalServer, timeoutMs = 30_000): Promise<MemorySnapshot> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await local.server.deps.engine.stats();
    if ((stats.liveRequests === 0 && stats.queued === 0) || Date.now() > deadline) {
      const mem = process.memoryUsage();
      return { rss_mb: mib(mem.rss), heap_used_mb: mib(mem.heapUsed), num_tensors: stats.numTensors };
    }
    await sleep(50);
  }
}

function mixedDecoding(k: number, maxNewTokens: number): Decoding {
  switch (k % 3) {
    case 0:
      return { strategy: 'greedy', max_new_tokens: maxNewTokens };
    case 1:
      return { strategy: 'sample', max_new_tokens: maxNewTokens, temperature: 0.9, top_k: 50, seed: k };
    default:
      return { strategy: 'beam_search', max_new_tokens: maxNewTokens, beam_width: 3 };
  }
}

export async function benchMemory(local: LocalServer, opts: MemoryOptions, log: (line: string) => void): Promise<MemoryFigures> {
  const clients = await connectClients(local.url, opts.streams, { timeoutMs: opts.timeoutMs, prefix: 'mem' });
  try {
    await Promise.all([0, 1, 2].map((k) => clients[k % clients.length].chat(PROMPTS[k], mixedDecoding(k, opts.maxNewTokens))));
    const before = await idleSnapshot(local);
    log(`memory before: rss ${before.rss_mb} MB, ${before.num_tensors} tensors; generating ${opts.tokens} tokens`);
    const results: RequestResult[] = [];
    let generated = 0;
    let failures = 0;
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = i; generated < opts.tokens; k += clients.length) {
          const r = await c.chat(PROMPTS[k % PROMPTS.length], mixedDecoding(k, opts.maxNewTokens));
          results.push(r);
          generated += r.tokens;
          // A server that fails every request would never reach the target.
          if (r.error && ++failures > 50) throw new Error(`memory: more than 50 failed requests (last: ${r.error.code}: ${r.error.message})`);
        }
      }),
    );
    const after = await idleSnapshot(local);
    const figures: MemoryFigures = {
      target_tokens: opts.tokens,
      generated_tokens: generated,
      streams: opts.streams,
      before,
      after,
      rss_delta_mb: round(after.rss_mb - before.rss_mb, 1),
      num_tensors_delta: after.num_tensors - before.num_tensors,
      requests: summarize(results),
    };
    log(`memory after ${generated} tokens: rss ${after.rss_mb} MB (${figures.rss_delta_mb >= 0 ? '+' : ''}${figures.rss_delta_mb}), ${after.num_tensors} tensors (${figures.num_tensors_delta >= 0 ? '+' : ''}${figures.num_tensors_delta})`);
    return figures;
  } finally {
    closeClients(clients);
  }
}
