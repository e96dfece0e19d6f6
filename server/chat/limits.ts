/**
 * Limits per session AND per client address, so that fresh sessions (which are free) buy nothing:
 * - generations in flight (MAX_INFLIGHT_PER_SESSION, MAX_INFLIGHT_PER_ADDRESS) and started per minute
 *   (RATE_LIMIT_PER_MINUTE, RATE_LIMIT_PER_ADDRESS_PER_MINUTE), across every socket and /v1;
 * - ratings and A/B choices per minute (FEEDBACK_PER_MINUTE, FEEDBACK_PER_ADDRESS_PER_MINUTE);
 * - sessions created per minute per address (SESSIONS_PER_ADDRESS_PER_MINUTE).
 * The address is the socket's peer, or with TRUST_PROXY the client named by the proxies' X-Forwarded-For
 * (see client-address.ts). Kept in this process's memory: with several replicas each enforces its own share.
 */
import { ApiError } from '../errors.ts';

const WINDOW_MS = 60_000;

interface ClientLimitOptions {
  maxInflightPerSession: number;
  maxInflightPerAddress: number;
  rateLimitPerMinute: number;
  rateLimitPerAddressPerMinute: number;
  feedbackPerMinute: number;
  feedbackPerAddressPerMinute: number;
  sessionsPerAddressPerMinute: number;
}

/** Who is asking: the session (when there is one) and the client's address. */
interface Client {
  sessionId: number;
  address: string;
}

/** Events per key within the last minute. */
class MinuteWindow<K> {
  private readonly times = new Map<K, number[]>();
  constructor(private readonly now: () => number) {}

  /** Seconds until `n` more fit under `limit`, or 0 when they fit now. */
  wait(key: K, n: number, limit: number): number {
    const t = this.now();
    const recent = (this.times.get(key) ?? []).filter((s) => s > t - WINDOW_MS);
    this.times.set(key, recent);
    if (recent.length + n <= limit) return 0;
    return Math.max(1, Math.ceil((recent[Math.max(0, recent.length + n - limit - 1)] + WINDOW_MS - t) / 1000));
  }

  add(key: K, n: number): void {
    const recent = this.times.get(key) ?? [];
    for (let i = 0; i < n; i++) recent.push(this.now());
    this.times.set(key, recent);
  }

  prune(): void {
    const cutoff = this.now() - WINDOW_MS;
    for (const [key, times] of this.times) if (times.every((s) => s <= cutoff)) this.times.delete(key);
  }
}

class Counter<K> {
  private readonly counts = new Map<K, number>();
  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }
  add(key: K, n: number): void {
    const left = this.get(key) + n;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}

export class ClientLimits {
  private readonly sessionStarts: MinuteWindow<number>;
  private readonly addressStarts: MinuteWindow<string>;
  private readonly sessionFeedback: MinuteWindow<number>;
  private readonly addressFeedback: MinuteWindow<string>;
  private readonly addressSessions: MinuteWindow<string>;
  private readonly sessionInflight = new Counter<number>();
  private readonly addressInflight = new Counter<string>();
  private calls = 0;

  constructor(
    private readonly opts: ClientLimitOptions,
    now: () => number = Date.now,
  ) {
    [this.sessionStarts, this.sessionFeedback] = [new MinuteWindow<number>(now), new MinuteWindow<number>(now)];
    [this.addressStarts, this.addressFeedback, this.addressSessions] = [new MinuteWindow<string>(now), new MinuteWindow<string>(now), new MinuteWindow<string>(now)];
  }

  /** Takes `n` generation slots for the client, or throws `rate_limited`; call the result to give them back. */
  acquire({ sessionId, address }: Client, n = 1): () => void {
    const o = this.opts;
    this.check(this.sessionStarts.wait(sessionId, n, o.rateLimitPerMinute), `at most ${o.rateLimitPerMinute} generation requests per minute per session (RATE_LIMIT_PER_MINUTE)`);
    this.check(this.addressStarts.wait(address, n, o.rateLimitPerAddressPerMinute), `at most ${o.rateLimitPerAddressPerMinute} generation requests per minute per client address (RATE_LIMIT_PER_ADDRESS_PER_MINUTE)`);
    const [bySession, byAddress] = [this.sessionInflight.get(sessionId), this.addressInflight.get(address)];
    if (bySession + n > o.maxInflightPerSession) {
      throw new ApiError('rate_limited', `at most ${o.maxInflightPerSession} generations in flight per session (MAX_INFLIGHT_PER_SESSION); ${bySession} running`, 1);
    }
    if (byAddress + n > o.maxInflightPerAddress) {
      throw new ApiError('rate_limited', `at most ${o.maxInflightPerAddress} generations in flight per client address (MAX_INFLIGHT_PER_ADDRESS); ${byAddress} running`, 1);
    }
    this.sessionStarts.add(sessionId, n);
    this.addressStarts.add(address, n);
    this.sessionInflight.add(sessionId, n);
    this.addressInflight.add(address, n);
    this.tidy();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.sessionInflight.add(sessionId, -n);
      this.addressInflight.add(address, -n);
    };
  }

  /** Counts a rating or an A/B choice, or throws `rate_limited`. */
  feedback({ sessionId, address }: Client): void {
    const o = this.opts;
    this.check(this.sessionFeedback.wait(sessionId, 1, o.feedbackPerMinute), `at most ${o.feedbackPerMinute} ratings and choices per minute per session (FEEDBACK_PER_MINUTE)`);
    this.check(this.addressFeedback.wait(address, 1, o.feedbackPerAddressPerMinute), `at most ${o.feedbackPerAddressPerMinute} ratings and choices per minute per client address (FEEDBACK_PER_ADDRESS_PER_MINUTE)`);
    this.sessionFeedback.add(sessionId, 1);
    this.addressFeedback.add(address, 1);
    this.tidy();
  }

  /** Counts a new session from `address`, or throws `rate_limited`. */
  sessionCreated(address: string): void {
    const limit = this.opts.sessionsPerAddressPerMinute;
    this.check(this.addressSessions.wait(address, 1, limit), `at most ${limit} new sessions per minute per client address (SESSIONS_PER_ADDRESS_PER_MINUTE)`);
    this.addressSessions.add(address, 1);
    this.tidy();
  }

  /** Generations in flight for the address (running or waiting for the engine). */
  inflightFor(address: string): number {
    return this.addressInflight.get(address);
  }

  private check(waitS: number, what: string): void {
    if (waitS > 0) throw new ApiError('rate_limited', `rate limit: ${what}; retry in ${waitS}s`, waitS);
  }

  /** Drops expired windows now and then, so that one-off clients do not accumulate. */
  private tidy(): void {
    if (++this.calls % 256 !== 0) return;
    for (const w of [this.sessionStarts, this.addressStarts, this.sessionFeedback, this.addressFeedback, this.addressSessions]) w.prune();
  }
}
