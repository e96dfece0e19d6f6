/**
 * Continuous batching: every live generation (greedy and sampling streams, every beam of every beam
 * search) is a row of one shared KV cache, and each step runs ONE batched forward over all rows. New
 * requests are prefilled and join at the next step; finished and cancelled ones leave; beam search
 * reorders its own rows. Batch-8 decoding costs little more than batch-1 on this engine (per-op
 * overhead dominates), which is what lets several users chat at near single-user speed.
 */
import type { DecodeCache, InferenceModel } from '../inference/inference-model.ts';
import { isIdentity, type GenerationEvent, type StepDecoder } from './decoder.ts';

interface BatchRequest {
  /** Prompt ids, already cropped to leave room in the window. */
  prompt: number[];
  decoder: StepDecoder;
  /** Called synchronously with each step's events, in order; the last call ends with `done`. */
  onEvents: (events: GenerationEvent[]) => void;
  /** Aborting cancels the request at the next step boundary (its `done` says 'cancelled'). */
  signal?: AbortSignal;
  /**
   * Who the request is for (e.g. a client's address). Free rows go to the waiting request whose group
   * holds the fewest rows, so that many requests of one group cannot keep the others waiting. Default ''.
   */
  group?: string;
}

interface Entry {
  req: BatchRequest;
  /** Rows this entry occupies now (consecutive in the batch, in entry order). */
  rows: number;
  /** The token each of its rows feeds at the next step. */
  pending: number[];
  resolve: () => void;
  reject: (err: Error) => void;
}

interface BatcherStats {
  liveRows: number;
  liveRequests: number;
  queued: number;
  steps: number;
  /** Milliseconds spent in the engine's prefill (admissions and window rebuilds) and step calls. */
  prefillMs: number;
  stepMs: number;
  /** Prefill calls and the prompt rows they encoded. */
  prefills: number;
  prefillRows: number;
  /** Rows summed over steps: rowSteps / steps is the mean batch of a step. */
  rowSteps: number;
}

export class Batcher {
  private entries: Entry[] = [];
  private readonly queue: Entry[] = [];
  /**
   * Entries out of both lists while a prefill is awaited (admitted from the queue, or moved out for a
   * window rebuild): a failure then must still settle them, or their callers would wait forever.
   */
  private inTransit: Entry[] = [];
  private cache: DecodeCache | null = null;
  private running = false;
  private steps = 0;
  private prefillMs = 0;
  private stepMs = 0;
  private prefills = 0;
  private prefillRows = 0;
  private rowSteps = 0;

  constructor(
    readonly model: InferenceModel,
    /** Rows allowed in the batch at once; requests beyond it wait in the queue. */
    private readonly maxRows: number,
  ) {
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new Error(`maxRows must be a positive integer (got ${maxRows})`);
  }

  stats(): BatcherStats {
    return {
      liveRows: this.entries.reduce((a, e) => a + e.rows, 0),
      liveRequests: this.entries.length,
      queued: this.queue.length,
      steps: this.steps,
      prefillMs: this.prefillMs,
      stepMs: this.stepMs,
      prefills: this.prefills,
      prefillRows: this.prefillRows,
      rowSteps: this.rowSteps,
    };
  }

  /** Runs a request to its end (resolves after its `done` event was delivered). */
  run(req: BatchRequest): Promise<void> {
    if (req.decoder.maxRows > this.maxRows) {
      return Promise.reject(new Error(`request needs ${req.decoder.maxRows} rows; the batch holds ${this.maxRows}`));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ req, rows: 0, pending: [], resolve, reject });
      if (!this.running) {
        this.running = true;
        void this.loop();
      }
    });
  }

  private async loop(): Promise<void> {
    try {
      while (this.entries.length > 0 || this.queue.length > 0) {
        await this.admit();
        this.dropCancelled();
        if (this.entries.length === 0) continue;
        await this.rebuildFullRows();
        const tokens = this.entries.flatMap((e) => e.pending);
        const t0 = performance.now();
        const { logits, cache } = await this.model.step(this.cache!, tokens);
        this.stepMs += performance.now() - t0;
        this.cache = cache;
        this.steps += 1;
        this.rowSteps += tokens.length;
        this.dispatch(logits);
        // Let sockets, timers and database callbacks run between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const e of [...this.entries, ...this.inTransit, ...this.queue]) e.reject(error);
      this.entries = [];
      this.inTransit = [];
      this.queue.length = 0;
      this.cache?.dispose();
      this.cache = null;
    } finally {
      this.running = false;
    }
  }

  private deliver(e: Entry, events: GenerationEvent[]): void {
    if (events.length > 0) e.req.onEvents(events);
  }

  /**
   * The queued request to admit next: the oldest of the group holding the fewest rows (running or
   * just admitted), so that groups share the batch in turn rather than first come, first served.
   */
  private nextQueued(held: Map<string, number>): number {
    let best = 0;
    for (let i = 1; i < this.queue.length; i++) {
      if ((held.get(this.queue[i].req.group ?? '') ?? 0) < (held.get(this.queue[best].req.group ?? '') ?? 0)) best = i;
    }
    return best;
  }

  /** Prefills queued requests that fit, lets each decoder take its first step, and joins their rows. */
  private async admit(): Promise<void> {
    let free = this.maxRows - this.entries.reduce((a, e) => a + e.req.decoder.maxRows, 0);
    const held = new Map<string, number>();
    const hold = (e: Entry) => held.set(e.req.group ?? '', (held.get(e.req.group ?? '') ?? 0) + e.req.decoder.maxRows);
    this.entries.forEach(hold);
    const admitted: Entry[] = [];
    while (this.queue.length > 0) {
      const next = this.nextQueued(held);
      // The next in turn waits for room rather than being overtaken by a smaller request.
      if (this.queue[next].req.decoder.maxRows > free) break;
      const [e] = this.queue.splice(next, 1);
      free -= e.req.decoder.maxRows;
      hold(e);
      admitted.push(e);
    }
    if (admitted.length === 0) return;
    this.inTransit = admitted;
    const { logits, cache } = await this.prefill(admitted.map((e) => e.req.prompt));
    const parents: number[] = [];
    const joined: Entry[] = [];
    admitted.forEach((e, i) => {
      const step = e.req.decoder.advance([logits[i]]);
      this.deliver(e, step.events);
      if (step.finished) {
        e.resolve();
        return;
      }
      for (const p of step.parents) parents.push(i + p);
      e.rows = step.parents.length;
      e.pending = step.tokens;
      joined.push(e);
    });
    if (joined.length === 0) {
      this.inTransit = [];
      cache.dispose();
      return;
    }
    const fresh = isIdentity(parents, cache.batch) ? cache : cache.selectRows(parents);
    this.cache = this.cache ? this.model.concatRows([this.cache, fresh]) : fresh;
    this.entries.push(...joined);
    this.inTransit = [];
  }

  /** Ends cancelled requests now and removes their rows. */
  private dropCancelled(): void {
    if (!this.entries.some((e) => e.req.signal?.aborted)) return;
    const keepRows: number[] = [];
    const kept: Entry[] = [];
    let start = 0;
    for (const e of this.entries) {
      if (e.req.signal?.aborted) {
        this.deliver(e, e.req.decoder.cancel());
        e.resolve();
      } else {
        for (let r = 0; r < e.rows; r++) keepRows.push(start + r);
        kept.push(e);
      }
      start += e.rows;
    }
    this.entries = kept;
    this.reselect(keepRows);
  }

  /**
   * Rows whose next position would pass the model's window: their request's rows are rebuilt from the
   * most recent context/2 tokens of each history (the pending token is fed by the coming step).
   */
  private async rebuildFullRows(): Promise<void> {
    const cache = this.cache!;
    const context = this.model.config.context;
    let start = 0;
    const full = new Set<Entry>();
    for (const e of this.entries) {
      for (let r = 0; r < e.rows; r++) if (cache.nextPos[start + r] >= context) full.add(e);
      start += e.rows;
    }
    if (full.size === 0) return;
    const keep = Math.max(2, Math.floor(context / 2));
    const stay = this.entries.filter((e) => !full.has(e));
    const moved = this.entries.filter((e) => full.has(e));
    const stayRows: number[] = [];
    start = 0;
    for (const e of this.entries) {
      if (!full.has(e)) for (let r = 0; r < e.rows; r++) stayRows.push(start + r);
      start += e.rows;
    }
    this.entries = stay;
    this.inTransit = moved;
    this.reselect(stayRows);
    const histories = moved.flatMap((e) => e.req.decoder.histories().map((h) => h.slice(Math.max(0, h.length - keep), h.length - 1)));
    const rebuilt = await this.prefill(histories);
    this.cache = this.cache ? this.model.concatRows([this.cache, rebuilt.cache]) : rebuilt.cache;
    this.entries.push(...moved);
    this.inTransit = [];
  }

  private async prefill(prompts: number[][]) {
    const t0 = performance.now();
    const r = await this.model.prefill(prompts);
    this.prefillMs += performance.now() - t0;
    this.prefills += 1;
    this.prefillRows += prompts.length;
    return r;
  }

  /** Hands each decoder its rows' logits and applies the rows they keep, fork or drop. */
  private dispatch(logits: Float32Array[]): void {
    const parents: number[] = [];
    const kept: Entry[] = [];
    let start = 0;
    for (const e of this.entries) {
      const rows = e.rows;
      const step = e.req.decoder.advance(logits.slice(start, start + rows));
      this.deliver(e, step.events);
      if (step.finished) {
        e.resolve();
      } else {
        for (const p of step.parents) parents.push(start + p);
        e.rows = step.parents.length;
        e.pending = step.tokens;
        kept.push(e);
      }
      start += rows;
    }
    this.entries = kept;
    this.reselect(parents);
  }

  /** Keeps exactly `rows` of the shared cache (in that order), trimming columns no row uses. */
  private reselect(rows: number[]): void {
    const cache = this.cache!;
    if (rows.length === 0) {
      cache.dispose();
      this.cache = null;
      return;
    }
    this.cache = (isIdentity(rows, cache.batch) ? cache : cache.selectRows(rows)).trimLeft();
  }
}
