/**
 * Frames waiting for an open socket (requests made while disconnected go out on reconnect), each with
 * the keys of the requests it opens, so that a queued request can be cancelled or failed by its id.
 */
import type { ClientFrame, RequestId } from '../../server/protocol.ts';

/** A request id as a map key (ids may be strings or numbers). */
export const requestKey = (id: RequestId): string => JSON.stringify(id);

/** The keys of the requests a frame opens: two for compare, none for cancel. */
export function requestKeys(frame: ClientFrame): string[] {
  switch (frame.type) {
    case 'compare':
      return [requestKey(frame.a.id), requestKey(frame.b.id)];
    case 'cancel':
      return [];
    default:
      return frame.id === undefined ? [] : [requestKey(frame.id)];
  }
}

interface Queued {
  frame: ClientFrame;
  keys: string[];
}

export class Outbox {
  private readonly queue: Queued[] = [];

  push(frame: ClientFrame): void {
    this.queue.push({ frame, keys: requestKeys(frame) });
  }

  /** Removes the frame that opens request `key`; the keys it opened, or undefined when none waits. */
  take(key: string): string[] | undefined {
    const at = this.queue.findIndex((q) => q.keys.includes(key));
    return at < 0 ? undefined : this.queue.splice(at, 1)[0].keys;
  }

  /** Empties the queue, oldest first. */
  drain(): Queued[] {
    return this.queue.splice(0);
  }
}
