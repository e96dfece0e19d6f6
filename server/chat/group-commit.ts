/**
 * Group commit: a write that arrives while another is in flight waits, and the writes that waited go
 * out together as one statement. A lone write goes at once, on its own statement, so an idle server
 * pays no delay; under load many writes share one round trip and one plan. If a group fails for any
 * reason but a lost connection, its writes are retried one by one, so that one bad row fails alone
 * and the others are stored. A lost connection fails the whole group (each write's own `one` decides
 * whether and how long to retry first).
 */
import { isConnectionError } from '../../db/index.ts';

interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

interface GroupWrites<T, R> {
  /** Writes one item. */
  one(item: T): Promise<R>;
  /** Writes several items in one statement; results in the items' order. */
  group(items: T[]): Promise<R[]>;
  /** The most items one statement writes. */
  maxGroup: number;
}

export class GroupCommit<T, R> {
  private readonly waiting: Waiting<T, R>[] = [];
  private writing = false;

  constructor(private readonly writes: GroupWrites<T, R>) {}

  write(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.writes.maxGroup);
      if (batch.length === 1) {
        await this.writes.one(batch[0].item).then(batch[0].resolve, batch[0].reject);
        continue;
      }
      try {
        const results = await this.writes.group(batch.map((w) => w.item));
        batch.forEach((w, i) => w.resolve(results[i]));
      } catch (err) {
        if (isConnectionError(err)) batch.forEach((w) => w.reject(err));
        else for (const w of batch) await this.writes.one(w.item).then(w.resolve, w.reject);
      }
    }
    this.writing = false;
  }
}

/** One writer per database and kind of write, made on first use. */
export function perDatabase<D extends object, W>(make: (db: D) => W): (db: D) => W {
  const writers = new WeakMap<D, W>();
  return (db) => {
    let writer = writers.get(db);
    if (!writer) writers.set(db, (writer = make(db)));
    return writer;
  };
}
