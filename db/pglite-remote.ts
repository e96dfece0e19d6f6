// The main thread's handle on the embedded database thread (pglite-thread.mjs): queries go over a
// message port and their rows come back structured-cloned. A database error comes back as an Error
// with PostgreSQL's fields (code, constraint, ...), as PGlite itself would throw it.
import { Worker } from 'node:worker_threads';

interface PlainError {
  name?: string;
  message: string;
  code?: string;
  [field: string]: string | number | undefined;
}

type FromThread =
  | { type: 'ready' }
  | { type: 'failed'; error: PlainError }
  | { type: 'result'; id: number; rows?: unknown[]; affectedRows?: number; error?: PlainError; busyMs: number }
  | { type: 'closed' };

export interface QueryResult<R> {
  rows: R[];
  affectedRows?: number;
}

/** A database error raised in the thread, with its fields restored (code, constraint, detail, ...). */
export class EmbeddedDatabaseError extends Error {
  override readonly name = 'EmbeddedDatabaseError';
  readonly code?: string;
  constructor(fields: PlainError) {
    super(fields.message);
    Object.assign(this, { ...fields, name: 'EmbeddedDatabaseError' });
  }
}

/** Queries answered so far, and how long the database thread has been busy (its event loop's active time). */
export interface EmbeddedDatabaseStats {
  queries: number;
  busyMs: number;
}

export class PGliteRemote {
  private readonly counted: EmbeddedDatabaseStats = { queries: 0, busyMs: 0 };
  private readonly pending = new Map<number, { resolve: (r: QueryResult<unknown>) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stopped: Error | null = null;
  private closing: Promise<void> | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: FromThread) => {
      if (msg.type !== 'result') return;
      this.counted.queries += 1;
      this.counted.busyMs = msg.busyMs;
      const call = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) call?.reject(new EmbeddedDatabaseError(msg.error));
      else call?.resolve({ rows: msg.rows ?? [], affectedRows: msg.affectedRows });
    });
    worker.on('error', (err) => this.fail(new Error(`the embedded database thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => this.fail(new Error(`the embedded database thread exited (code ${code})`)));
  }

  /** Starts the thread and opens the database in `dataDir` (in memory when undefined). */
  static async open(dataDir?: string): Promise<PGliteRemote> {
    const worker = new Worker(new URL('./pglite-thread.mjs', import.meta.url), { workerData: { dataDir } });
    let onMessage!: (msg: FromThread) => void;
    let onError!: (err: Error) => void;
    let onExit!: (code: number) => void;
    const ready = await new Promise<FromThread>((resolve, reject) => {
      onMessage = resolve;
      onError = reject;
      onExit = (code) => reject(new Error(`the embedded database thread exited (code ${code}) while starting`));
      worker.once('message', onMessage).once('error', onError).once('exit', onExit);
    }).finally(() => worker.off('message', onMessage).off('error', onError).off('exit', onExit));
    if (ready.type === 'failed') {
      await worker.terminate();
      throw new EmbeddedDatabaseError(ready.error);
    }
    return new PGliteRemote(worker);
  }

  stats(): EmbeddedDatabaseStats {
    return { ...this.counted };
  }

  get closed(): boolean {
    return this.stopped !== null;
  }

  /**
   * Sends a query without waiting for the ones before it (the thread runs them in order). Inside a
   * transaction every statement names it (`txn`; the first is its BEGIN, the one with `end` its
   * COMMIT or ROLLBACK): while it is open, the thread runs nothing else.
   */
  query<R>(sql: string, params: readonly unknown[] = [], txn?: { id: number; end?: boolean }): Promise<QueryResult<R>> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    return new Promise<QueryResult<R>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: QueryResult<unknown>) => void, reject });
      this.worker.postMessage({ type: 'query', id, sql, params, txn: txn?.id, end: txn?.end });
    });
  }

  /** Closes the database (writing it out) and stops the thread; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.stopped) return;
      const closed = new Promise<void>((resolve) => {
        this.worker.on('message', (msg: FromThread) => msg.type === 'closed' && resolve());
        this.worker.once('exit', () => resolve());
      });
      this.worker.postMessage({ type: 'close' });
      await closed;
      this.fail(new Error('the embedded database is closed'));
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private fail(error: Error): void {
    this.stopped ??= error;
    for (const call of this.pending.values()) call.reject(this.stopped);
    this.pending.clear();
  }
}
