/** Figures over a set of finished requests: counts, failures by reason, latency distributions, tokens. */
import { distribution, type Distribution } from './stats.ts';
import { deltaGaps, totalMs, ttftMs, type RequestResult } from './ws-client.ts';

export interface RequestSummary {
  completed: number;
  failed: number;
  /** Failed requests by reason: the server's error code, or socket_closed / timeout. */
  failed_by_reason: Record<string, number>;
  completion_tokens: number;
  /** Request sent → first delta. */
  ttft_ms: Distribution | null;
  /** Between consecutive deltas of a reply (a delta holds one or more tokens). */
  inter_token_ms: Distribution | null;
  /** Request sent → done. */
  total_ms: Distribution | null;
}

export function countReasons(codes: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of codes) out[c] = (out[c] ?? 0) + 1;
  return out;
}

export function summarize(results: RequestResult[]): RequestSummary {
  const ok = results.filter((r) => r.error === null);
  const failed = results.filter((r) => r.error !== null);
  return {
    completed: ok.length,
    failed: failed.length,
    failed_by_reason: countReasons(failed.map((r) => r.error!.code)),
    completion_tokens: ok.reduce((t, r) => t + r.tokens, 0),
    ttft_ms: distribution(ok.map(ttftMs).filter((x): x is number => x !== null)),
    inter_token_ms: distribution(ok.flatMap((r) => deltaGaps(r).map(([a, b]) => b - a))),
    total_ms: distribution(ok.map(totalMs)),
  };
}
