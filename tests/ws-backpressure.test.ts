// A client that stops reading its frames: once the socket's unsent bytes pass WS_MAX_BUFFERED_BYTES,
// the server stops queueing frames, cancels the socket's generations and closes it with 1008. The
// socket here is a stand-in whose `bufferedAmount` the test sets (a real one needs megabytes of
// unread frames to fill the kernel's buffers first).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import pino from 'pino';
import type { WebSocket } from 'ws';
import type { ServerDeps } from '../server/deps.ts';
import { Connection } from '../server/ws/connection.ts';

class StandInSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  closedWith: [number, string] | null = null;
  terminated = false;
  send(data: string) {
    this.sent.push(data);
  }
  close(code: number, reason: string) {
    this.closedWith = [code, reason];
  }
  terminate() {
    this.terminated = true;
  }
}

test('a socket over WS_MAX_BUFFERED_BYTES is closed with 1008 and its generations are cancelled', async () => {
  const socket = new StandInSocket();
  const errors: string[] = [];
  const deps = {
    config: { limits: { maxSocketBufferBytes: 16_384 } },
    metrics: { errors: { inc: ({ code }: { code: string }) => errors.push(code) }, wsConnections: { dec() {} } },
  } as unknown as ServerDeps;
  const conn = new Connection(socket as unknown as WebSocket, { id: 1 } as never, '127.0.0.1', deps, pino({ level: 'silent' }));
  const running = conn.begin('r1');

  socket.bufferedAmount = 16_384;
  conn.send({ type: 'delta', id: 'r1', text: 'still under' });
  assert.equal(socket.sent.length, 1);
  assert.equal(socket.closedWith, null);

  socket.bufferedAmount = 16_385;
  conn.send({ type: 'delta', id: 'r1', text: 'over' });
  assert.equal(socket.sent.length, 1, 'the frame is not queued');
  assert.equal(socket.closedWith?.[0], 1008);
  assert.match(socket.closedWith![1], /WS_MAX_BUFFERED_BYTES/);
  assert.equal(running.signal.aborted, true, 'its generation is cancelled at once');
  assert.deepEqual(errors, ['slow_consumer']);
  conn.send({ type: 'delta', id: 'r1', text: 'after' });
  assert.equal(socket.sent.length, 1, 'nothing more is sent');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(socket.terminated, true, 'the connection is dropped without waiting for the close handshake');
});
