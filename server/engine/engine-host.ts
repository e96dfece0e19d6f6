/**
 * The main thread's handle on the engine worker: start it, load or swap models, stream replies,
 * cancel them. Beyond `maxRows` live rows requests queue in the worker's batch; beyond `maxQueue`
 * waiting requests they are refused with EngineBusyError.
 *
 * If the worker exits (a crash, an out-of-memory abort), every request it was running ends with an
 * error at once, the host reports no model (so /health answers 503), and a new worker is started and
 * loaded with the model the old one was serving; new requests are refused as `unavailable` until it
 * is back. Restarts that keep failing are retried with a growing delay (up to RESTART_MAX_DELAY_MS).
 */
import { Worker } from 'node:worker_threads';
import type { EngineInfo } from '../../model/backend.ts';
import type { InferenceEngineInfo } from '../../model/inference/engine-choice.ts';
import type { ReplyEvent } from '../../model/decode/chat-reply.ts';
import type { DecodeOptions } from '../../model/decode/options.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import type { FromWorker, LoadedModelInfo, ToWorker, WorkerStats } from './messages.ts';

export class EngineBusyError extends Error {
  override readonly name = 'EngineBusyError';
}

export class EngineRequestError extends Error {
  constructor(
    readonly code: 'bad_request' | 'internal' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

export interface ReplyStream {
  /** The model version that writes this reply and the prompt's size, once the worker took it. */
  started: Promise<{ version: string; promptTokens: number }>;
  /** Text deltas, then one `done`. Ends early (with `done` finishReason 'cancelled') on abort. */
  events: AsyncIterable<ReplyEvent>;
}

/** A single-consumer queue that an async iterator drains; `close(error)` makes the iterator throw. */
class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private error: Error | null = null;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  close(error?: Error): void {
    this.closed = true;
    this.error = error ?? null;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
      } else if (this.closed) {
        if (this.error) throw this.error;
        return;
      } else {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
      }
    }
  }
}

interface Pending {
  queue: EventQueue<ReplyEvent>;
  started: { resolve: (v: { version: string; promptTokens: number }) => void; reject: (e: Error) => void };
}

interface EngineHostOptions {
  /** Rows (sequences, beams included) decoded together per step. */
  maxRows: number;
  /** Requests allowed to wait beyond the rows in flight before new ones are refused as busy. */
  maxQueue: number;
}

const RESTART_MAX_DELAY_MS = 30_000;
/** How long a worker asked to exit gets before it is terminated. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * Ends a worker thread and settles once it has exited. The worker is asked to exit itself (a message
 * runs between decode steps, never inside ONNX Runtime's synchronous native run); terminate() is only
 * the fallback for a worker that does not answer within STOP_TIMEOUT_MS. Callers that start another
 * worker await this first: a thread tearing down ONNX Runtime beside one that is starting it aborted
 * the whole process (Napi::Error, SIGABRT) in about a third of crash drills.
 */
async function stopWorker(worker: Worker): Promise<void> {
  if (worker.threadId === -1) return; // already exited
  const exited = new Promise<true>((resolve) => worker.once('exit', () => resolve(true)));
  worker.postMessage({ type: 'exit' } satisfies ToWorker);
  const timeout = new Promise<false>((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS, false).unref());
  if (!(await Promise.race([exited, timeout]))) await worker.terminate();
}

/** Starts a worker and waits until its engine is up (no model loaded yet). */
async function startWorker(maxRows: number): Promise<{ worker: Worker; engine: EngineInfo; inference: InferenceEngineInfo }> {
  const worker = new Worker(new URL('../../model/worker-entry.mjs', import.meta.url), {
    workerData: { module: new URL('./worker.ts', import.meta.url).href, maxRows },
  });
  const ready = await new Promise<{ engine: EngineInfo; inference: InferenceEngineInfo }>((resolve, reject) => {
    const onMessage = (msg: FromWorker) => {
      if (msg.type === 'ready') {
        worker.off('message', onMessage);
        worker.off('error', reject);
        worker.off('exit', onExit);
        resolve({ engine: msg.engine, inference: msg.inference });
      }
    };
    const onExit = (code: number) => reject(new Error(`engine worker exited with code ${code} while starting`));
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.once('exit', onExit);
  });
  return { worker, ...ready };
}

export class EngineHost {
  private readonly pending = new Map<number, Pending>();
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private inFlight = 0;
  private active: LoadedModelInfo | null = null;
  /** Why the worker cannot take requests now (it exited and is restarting), or null. */
  private exited: Error | null = null;
  private closed = false;
  private restarting: Promise<void> | null = null;
  private worker!: Worker;
  /** Workers started after the first one. */
  restarts = 0;

  private constructor(
    worker: Worker,
    readonly engine: EngineInfo,
    /** The engine that generates (ort or tfjs); `engine` is the tfjs backend that loads checkpoints. */
    readonly inference: InferenceEngineInfo,
    private readonly opts: EngineHostOptions,
    private readonly onRestart?: (event: { error: Error; restarted: boolean; loadedVersion: string | null }) => void,
  ) {
    this.attach(worker);
  }

  /** Starts the worker and waits until its engine is up (no model loaded yet). */
  static async start(opts: EngineHostOptions & { onRestart?: EngineHost['onRestart'] }): Promise<EngineHost> {
    const { worker, engine, inference } = await startWorker(opts.maxRows);
    return new EngineHost(worker, engine, inference, opts, opts.onRestart);
  }

  private attach(worker: Worker): void {
    this.worker = worker;
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => this.onWorkerGone(worker, err));
    worker.on('exit', (code) => this.onWorkerGone(worker, new Error(`the engine worker exited (code ${code}); it is being restarted`)));
  }

  /** The model serving new requests; null while none is loaded or the worker is restarting. */
  get activeModel(): LoadedModelInfo | null {
    return this.exited ? null : this.active;
  }

  /** Whether the worker is up (false while it restarts after an exit). */
  get running(): boolean {
    return this.exited === null;
  }

  /**
   * Makes the worker thread throw an uncaught error, as a defect in it would, and settles once it has
   * exited; the host then restarts it (for fault tests and drills).
   */
  async crashWorker(): Promise<void> {
    // Not events.once: it rejects on the 'error' event that the crash emits before 'exit'.
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'crash' });
    await exited;
  }

  /** Settles when a restart under way has finished (at once when none is). */
  async whenRunning(): Promise<void> {
    while (this.restarting) await this.restarting;
  }

  /**
   * Loads a checkpoint in the worker (sha256, shapes, tokenizer and a warm-up forward are checked
   * there) and makes it serve new requests. Streams running on the previous model finish on it.
   */
  async load(checkpointDir: string, version: string): Promise<LoadedModelInfo> {
    const info = (await this.call({ type: 'load', checkpointDir, version })) as LoadedModelInfo;
    this.active = info;
    return info;
  }

  async stats(): Promise<WorkerStats> {
    if (this.exited) {
      const idle = { liveRows: 0, liveRequests: 0, queued: 0, steps: 0, numTensors: 0, liveModels: 0, liveOrtModels: 0 };
      return { activeVersion: null, drainingVersions: [], ...idle, prefillMs: 0, stepMs: 0, prefills: 0, prefillRows: 0, rowSteps: 0, busyMs: 0 };
    }
    return (await this.call({ type: 'stats' })) as WorkerStats;
  }

  /** Requests accepted and not yet finished (running or queued). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /**
   * Streams a reply. Throws EngineBusyError at once when the queue is full. `group` (the client's
   * address) shares the rows fairly: a free row goes to the waiting group that holds the fewest.
   */
  reply(messages: ChatMessage[], decoding: DecodeOptions, signal?: AbortSignal, group = ''): ReplyStream {
    if (this.exited) throw new EngineRequestError('unavailable', this.exited.message);
    if (this.inFlight >= this.opts.maxRows + this.opts.maxQueue) {
      throw new EngineBusyError(`the server is busy: ${this.inFlight} requests in flight (limit ${this.opts.maxRows + this.opts.maxQueue})`);
    }
    const id = this.nextId++;
    const queue = new EventQueue<ReplyEvent>();
    let started!: Pending['started'];
    const startedPromise = new Promise<{ version: string; promptTokens: number }>((resolve, reject) => {
      started = { resolve, reject };
    });
    startedPromise.catch(() => {});
    this.pending.set(id, { queue, started });
    this.inFlight += 1;
    const onAbort = () => this.post({ type: 'cancel', id });
    signal?.addEventListener('abort', onAbort, { once: true });
    this.post({ type: 'generate', id, messages, decoding, group });
    if (signal?.aborted) onAbort();
    const release = () => {
      signal?.removeEventListener('abort', onAbort);
    };
    const events = (async function* (host: EngineHost) {
      try {
        yield* queue;
      } finally {
        release();
        // A consumer that stops early (socket closed) cancels the generation.
        if (host.pending.has(id)) host.post({ type: 'cancel', id });
      }
    })(this);
    return { started: startedPromise, events };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.exited ??= new Error('engine closed');
    await this.restarting?.catch(() => {});
    await stopWorker(this.worker);
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private call(msg: { type: 'load'; checkpointDir: string; version: string } | { type: 'stats' }): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    return this.callUnchecked(msg);
  }

  private callUnchecked(msg: { type: 'load'; checkpointDir: string; version: string } | { type: 'stats' }): Promise<unknown> {
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(requestId, { resolve, reject });
      this.post({ ...msg, requestId } as ToWorker);
    });
  }

  private finish(id: number, error?: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.inFlight -= 1;
    if (error) p.started.reject(error);
    p.queue.close(error);
  }

  private onMessage(msg: FromWorker): void {
    switch (msg.type) {
      case 'loaded':
      case 'load_failed':
      case 'stats': {
        const call = this.calls.get(msg.requestId);
        if (!call) return;
        this.calls.delete(msg.requestId);
        if (msg.type === 'load_failed') call.reject(new Error(msg.error));
        else call.resolve(msg.type === 'loaded' ? msg.info : msg.stats);
        return;
      }
      case 'started':
        this.pending.get(msg.id)?.started.resolve({ version: msg.version, promptTokens: msg.promptTokens });
        return;
      case 'events':
        for (const { id, events } of msg.replies) {
          const p = this.pending.get(id);
          if (!p) continue;
          for (const ev of events) p.queue.push(ev);
          if (events.some((e) => e.type === 'done')) this.finish(id);
        }
        return;
      case 'failed':
        this.finish(msg.id, new EngineRequestError(msg.code, msg.message));
        return;
      case 'ready':
        return;
    }
  }

  /** The worker exited or failed: end what it was running, then start a new one (unless closing). */
  private onWorkerGone(worker: Worker, err: Error): void {
    if (worker !== this.worker) return;
    const first = this.exited === null;
    this.exited ??= err;
    const error = new EngineRequestError('unavailable', err.message);
    for (const id of [...this.pending.keys()]) this.finish(id, error);
    for (const call of this.calls.values()) call.reject(error);
    this.calls.clear();
    if (first && !this.closed) this.restarting = this.restart(err).finally(() => (this.restarting = null));
  }

  private async restart(cause: Error): Promise<void> {
    // The old thread must be gone before a new one starts: ONNX Runtime's environment is shared by
    // the threads of a process, and one thread tearing down while another creates sessions is a race.
    await stopWorker(this.worker).catch(() => {});
    const model = this.active;
    for (let delay = 500; !this.closed; delay = Math.min(delay * 2, RESTART_MAX_DELAY_MS)) {
      try {
        const { worker } = await startWorker(this.opts.maxRows);
        if (this.closed) {
          await stopWorker(worker);
          return;
        }
        this.attach(worker);
        this.exited = null;
        this.restarts += 1;
        if (model) {
          this.exited = new Error('the engine worker is reloading its model after a restart');
          try {
            this.active = (await this.callUnchecked({ type: 'load', checkpointDir: model.checkpointDir, version: model.version })) as LoadedModelInfo;
          } finally {
            if (this.worker === worker) this.exited = null;
          }
        }
        this.onRestart?.({ error: cause, restarted: true, loadedVersion: model?.version ?? null });
        return;
      } catch (err) {
        this.exited = err as Error;
        this.onRestart?.({ error: err as Error, restarted: false, loadedVersion: null });
        await stopWorker(this.worker).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
