/**
 * The replies running in this process, so that shutdown can let them finish (up to a grace period),
 * then cancel the rest and wait until each has stored its final state.
 */
export class ReplyRegistry {
  private readonly shutdown = new AbortController();
  private readonly running = new Set<Promise<unknown>>();

  /** Aborted when the server stops: every reply listens to it as well as to its own signal. */
  get signal(): AbortSignal {
    return this.shutdown.signal;
  }

  get size(): number {
    return this.running.size;
  }

  /** Whether shutdown has begun (new requests are refused). */
  closing = false;

  track<T>(work: Promise<T>): Promise<T> {
    const settled = work.then(
      () => {},
      () => {},
    );
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    return work;
  }

  /** Refuses new work, waits up to `graceMs` for running replies, cancels the rest and waits for them. */
  async drain(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.running.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.running), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    this.shutdown.abort();
    await Promise.all(this.running);
  }
}
