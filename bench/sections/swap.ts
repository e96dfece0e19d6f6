/**
 * `swap`: the pause a hot swap causes in running streams. Clients chat back to back while the bench
 * activates another policy version through the admin API (POST /api/admin/models/:id/activate, Bearer
 * admin token) a few times, alternating between the served version and a copy of its checkpoint
 * registered as a second version (same size, so the load costs what a real new version costs).
 *
 * The engine worker loads the new weights (read, sha256, warm-up forward) on the thread that also runs
 * the decode steps, so streams stall while it loads. Reported: each activation's duration, the longest
 * gap between two deltas of a stream that overlaps an activation (against the longest elsewhere), the
 * failed requests by reason (a swap must drop none), and requests sent after an activation finished
 * that were still answered by another version.
 */
import type { Decoding } from '../../server/protocol.ts';
import type { LocalServer } from '../lib/local-server.ts';
import { round } from '../lib/stats.ts';
import { summarize, type RequestSummary } from '../lib/summary.ts';
import { closeClients, connectClients, deltaGaps, PROMPTS, type RequestResult } from '../lib/ws-client.ts';

interface SwapOptions {
  swaps: number;
  streams: number;
  maxNewTokens: number;
  /** Streaming time before the first activation and after each one. */
  intervalMs: number;
  timeoutMs: number;
}

interface SwapEvent {
  to_version: number;
  status: number;
  activate_ms: number;
  /** Longest delta gap of any stream overlapping this activation; null when no stream was mid-reply. */
  longest_gap_ms: number | null;
}

export interface SwapFigures {
  streams: number;
  max_new_tokens: number;
  versions: [number, number];
  swaps: SwapEvent[];
  longest_gap_across_swap_ms: number | null;
  longest_gap_elsewhere_ms: number | null;
  /** Requests whose lifetime overlapped an activation. */
  requests_across_swaps: number;
  /** Requests sent after an activation returned, before the next, that another version answered. */
  wrong_version: number;
  requests: RequestSummary;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchSwap(local: LocalServer, opts: SwapOptions, log: (line: string) => void): Promise<SwapFigures> {
  const original = local.server.deps.models.current?.id;
  if (original === undefined) throw new Error('the server serves no model version');
  const alternate = await local.addPolicyVersion();
  const decoding: Decoding = { strategy: 'greedy', max_new_tokens: opts.maxNewTokens };
  const clients = await connectClients(local.url, opts.streams, { timeoutMs: opts.timeoutMs, prefix: 'swap' });
  const results: RequestResult[] = [];
  const windows: { start: number; end: number; to: number; status: number }[] = [];
  let stop = false;
  try {
    const loops = clients.map(async (c, i) => {
      for (let k = 0; !stop; k++) {
        const r = await c.chat(PROMPTS[(i + k) % PROMPTS.length], decoding);
        results.push(r);
        if (r.error) await sleep(100);
      }
    });
    await sleep(opts.intervalMs);
    for (let i = 0; i < opts.swaps; i++) {
      const to = i % 2 === 0 ? alternate : original;
      const start = performance.now();
      const res = await fetch(`${local.url}/api/admin/models/${to}/activate`, { method: 'POST', headers: { authorization: `Bearer ${local.adminToken}` } });
      await res.arrayBuffer();
      const end = performance.now();
      windows.push({ start, end, to, status: res.status });
      log(`swap ${i + 1}/${opts.swaps}: activate version ${to} -> ${res.status} in ${(end - start).toFixed(0)} ms`);
      if (!res.ok) throw new Error(`POST /api/admin/models/${to}/activate answered ${res.status}`);
      await sleep(opts.intervalMs);
    }
    stop = true;
    await Promise.all(loops);
  } finally {
    stop = true;
    closeClients(clients);
  }

  const gaps = results.flatMap(deltaGaps);
  const overlaps = (a: number, b: number, w: { start: number; end: number }) => a < w.end && b > w.start;
  const maxOrNull = (xs: number[]) => (xs.length > 0 ? round(Math.max(...xs), 2) : null);
  const swaps: SwapEvent[] = windows.map((w) => ({
    to_version: w.to,
    status: w.status,
    activate_ms: round(w.end - w.start, 1),
    longest_gap_ms: maxOrNull(gaps.filter(([a, b]) => overlaps(a, b, w)).map(([a, b]) => b - a)),
  }));
  const across = gaps.filter(([a, b]) => windows.some((w) => overlaps(a, b, w))).map(([a, b]) => b - a);
  const elsewhere = gaps.filter(([a, b]) => !windows.some((w) => overlaps(a, b, w))).map(([a, b]) => b - a);
  let wrongVersion = 0;
  windows.forEach((w, i) => {
    const nextStart = windows[i + 1]?.start ?? Infinity;
    for (const r of results) if (r.sentAt > w.end && r.sentAt < nextStart && r.modelVersion !== null && r.modelVersion !== w.to) wrongVersion++;
  });
  const figures: SwapFigures = {
    streams: opts.streams,
    max_new_tokens: opts.maxNewTokens,
    versions: [original, alternate],
    swaps,
    longest_gap_across_swap_ms: maxOrNull(across),
    longest_gap_elsewhere_ms: maxOrNull(elsewhere),
    requests_across_swaps: results.filter((r) => windows.some((w) => overlaps(r.sentAt, r.endAt, w))).length,
    wrong_version: wrongVersion,
    requests: summarize(results),
  };
  log(`swap: longest gap across a swap ${figures.longest_gap_across_swap_ms} ms (elsewhere ${figures.longest_gap_elsewhere_ms} ms), ${figures.requests.failed} failed`);
  return figures;
}
