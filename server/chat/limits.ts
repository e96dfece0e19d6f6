/**
 * Per-session limits on generations: how many may be in flight at once (MAX_INFLIGHT_PER_SESSION) and
 * how many may start per minute (RATE_LIMIT_PER_MINUTE), across every socket and /v1. Kept in this
 * process's memory: with several replicas each enforces its own share.
 */
import { ApiError } from '../errors.ts';

const WINDOW_MS = 60_000;

export class SessionLimits {
  private readonly inflight = new Map<number, number>();
  private readonly starts = new Map<number, number[]>();

  constructor(
    private readonly opts: { maxInflightPerSession: number; rateLimitPerMinute: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes `n` generation slots for the session, or throws `rate_limited`; call the result to give them back. */
  acquire(sessionId: number, n = 1): () => void {
    const { maxInflightPerSession, rateLimitPerMinute } = this.opts;
    const t = this.now();
    const recent = (this.starts.get(sessionId) ?? []).filter((s) => s > t - WINDOW_MS);
    if (recent.length + n > rateLimitPerMinute) {
      const retryAfter = Math.max(1, Math.ceil((recent[0] + WINDOW_MS - t) / 1000));
      throw new ApiError('rate_limited', `rate limit: at most ${rateLimitPerMinute} generation requests per minute per session (RATE_LIMIT_PER_MINUTE); retry in ${retryAfter}s`, retryAfter);
    }
    const running = this.inflight.get(sessionId) ?? 0;
    if (running + n > maxInflightPerSession) {
      throw new ApiError('rate_limited', `at most ${maxInflightPerSession} generations in flight per session (MAX_INFLIGHT_PER_SESSION); ${running} running`, 1);
    }
    for (let i = 0; i < n; i++) recent.push(t);
    this.starts.set(sessionId, recent);
    this.inflight.set(sessionId, running + n);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inflight.get(sessionId) ?? n) - n;
      if (left > 0) this.inflight.set(sessionId, left);
      else this.inflight.delete(sessionId);
      this.prune();
    };
  }

  private prune(): void {
    const cutoff = this.now() - WINDOW_MS;
    for (const [id, times] of this.starts) if (times.every((s) => s <= cutoff)) this.starts.delete(id);
  }
}
