/**
 * One generation request as seen by the caller: `started` (the stored reply's ids), the deltas as an
 * async iterator, and `done` (the final frame). An `error` frame rejects `done` and makes the iterator
 * throw; the deltas received before it are still delivered first.
 */
import type { DoneFrame, RequestId, StartFrame } from '../../server/protocol.ts';
import type { ChatError } from './errors.ts';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A caller that only iterates (or only awaits `done`) must not see unhandled rejections.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export class ReplyStream implements AsyncIterable<string> {
  private readonly startD = deferred<StartFrame>();
  private readonly doneD = deferred<DoneFrame>();
  private readonly queue: string[] = [];
  private waiter: (() => void) | null = null;
  private ended: { error?: ChatError } | null = null;
  /** The reply's text so far. */
  text = '';

  constructor(
    readonly id: RequestId,
    private readonly onCancel: (id: RequestId) => void,
  ) {}

  /** The reply is stored and generating: its message, conversation and user-message ids, and model version. */
  get started(): Promise<StartFrame> {
    return this.startD.promise;
  }

  /** The reply ended (finish_reason "stop", "length" or "cancelled"); rejects with a ChatError. */
  get done(): Promise<DoneFrame> {
    return this.doneD.promise;
  }

  get finished(): boolean {
    return this.ended !== null;
  }

  /** Stops the generation; `done` then resolves with finish_reason "cancelled". */
  cancel(): void {
    if (!this.ended) this.onCancel(this.id);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      if (this.queue.length > 0) {
        yield this.queue.shift()!;
        continue;
      }
      if (this.ended) {
        if (this.ended.error) throw this.ended.error;
        return;
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** @internal */
  handleStart(frame: StartFrame): void {
    this.startD.resolve(frame);
  }

  /** @internal */
  handleDelta(text: string): void {
    if (this.ended) return;
    this.text += text;
    this.queue.push(text);
    this.wake();
  }

  /** @internal */
  handleDone(frame: DoneFrame): void {
    if (this.ended) return;
    this.ended = {};
    this.startD.reject(new Error('the reply ended before it started'));
    this.doneD.resolve(frame);
    this.wake();
  }

  /** @internal */
  handleError(error: ChatError): void {
    if (this.ended) return;
    this.ended = { error };
    this.startD.reject(error);
    this.doneD.reject(error);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
