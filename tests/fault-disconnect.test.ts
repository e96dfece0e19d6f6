// Fault tests: clients that vanish mid-stream. Several sockets at once start greedy and beam-search
// replies and disconnect at random points (before `start`, after `start`, after k deltas; closing
// politely or dropping the TCP connection). Afterwards the engine holds nothing for them (no live
// rows, requests or queue; the worker's tensor count back at its level) and every reply row is
// ended consistently: a finish reason always, `cancelled` with fewer tokens than allowed when it was
// cut, the stored text its deltas. Real server, tiny trained model, every database target.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Message } from '../db/index.ts';
import type { DeltaFrame, StartFrame } from '../server/protocol.ts';
import { databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

const MAX_NEW_TOKENS = 96;

interface Client {
  strategy: 'greedy' | 'beam_search';
  beamWidth: number;
  /** When the client goes: before `start`, right after it, or after that many deltas. */
  leave: { at: 'sent' } | { at: 'start' } | { at: 'deltas'; count: number };
  how: 'close' | 'terminate';
}

const clientArb: fc.Arbitrary<Client> = fc.record({
  strategy: fc.constantFrom('greedy', 'beam_search'),
  beamWidth: fc.integer({ min: 2, max: 4 }),
  leave: fc.oneof(
    { arbitrary: fc.constant({ at: 'sent' as const }), weight: 1 },
    { arbitrary: fc.constant({ at: 'start' as const }), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 12 }).map((count) => ({ at: 'deltas' as const, count })), weight: 4 },
  ),
  how: fc.constantFrom('close', 'terminate'),
});

for (const target of databaseTargets()) {
  describe(`fault: clients disconnecting mid-stream (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let baseline: number;

    const idle = () =>
      eventually(
        async () => {
          if (t.server.deps.engine.requestsInFlight !== 0 || t.server.deps.replies.size !== 0) return undefined;
          const s = await t.server.deps.engine.stats();
          return s.liveRows === 0 && s.liveRequests === 0 && s.queued === 0 ? s : undefined;
        },
        { timeoutMs: 20_000, what: 'the engine to be idle' },
      );

    before(async () => {
      t = await startTestServer(target, { MAX_NEW_TOKENS: String(MAX_NEW_TOKENS), MAX_INFLIGHT_PER_SESSION: '16', ENGINE_MAX_ROWS: '16' });
      token = await newSession(t.url);
      // Warm up both decoders once so that whatever the worker keeps for good (compiled kernels,
      // constants) is counted in the baseline.
      const ws = await TestSocket.open(t.wsUrl, { token });
      try {
        for (const decoding of [{ max_new_tokens: 8 }, { strategy: 'beam_search' as const, beam_width: 4, max_new_tokens: 8 }]) {
          assert.ok((await ws.request({ type: 'chat', id: `warm-${decoding.max_new_tokens}-${'strategy' in decoding}`, content: 'Warm up', decoding })).done);
        }
      } finally {
        ws.close();
      }
      baseline = (await idle()).numTensors;
    });
    after(async () => {
      await t?.close();
    });

    test('random disconnects leave no live rows, requests or tensors, and consistent rows', async (tc) => {
      let scenarios = 0;
      let cut = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(clientArb, { minLength: 1, maxLength: 4 }), async (clients) => {
          scenarios += 1;
          const runs = await Promise.all(clients.map((c, i) => runClient(t, token, c, `s${scenarios}-${i}`)));
          const stats = await idle();
          assert.equal(stats.numTensors, baseline, 'the worker holds no tensors of the abandoned replies');
          for (const [i, run] of runs.entries()) {
            const c = clients[i];
            if (run.messageId === undefined) continue;
            const row = await storedReply(t, run.messageId);
            assert.ok(['cancelled', 'stop', 'length'].includes(row.finish_reason!), JSON.stringify(row));
            assert.equal((row.decoding as { strategy: string }).strategy, c.strategy);
            assert.ok(row.completion_tokens !== null && row.timings !== null, JSON.stringify(row));
            // What the client saw is a prefix of what was stored.
            assert.ok(row.content.startsWith(run.deltas.join('')), `${JSON.stringify(run.deltas.join(''))} vs ${JSON.stringify(row.content)}`);
            if (row.finish_reason === 'cancelled') {
              cut += 1;
              assert.ok(row.completion_tokens! < MAX_NEW_TOKENS, JSON.stringify(row));
            }
          }
          // Nothing anywhere is left looking like a reply in progress (a frame that reached the server
          // just before its socket went away may still be storing its cancelled reply: wait for it).
          const unfinished = () => t.server.deps.db.selectFrom('messages').select('id').where('role', '=', 'assistant').where('finish_reason', 'is', null).execute();
          await eventually(async () => (await unfinished()).length === 0, { timeoutMs: 10_000, what: 'every reply row to have its end stored' }).catch(async () => {
            assert.deepEqual(await unfinished(), []);
          });
        }),
        { numRuns: 20, includeErrorInReport: true },
      );
      tc.diagnostic(`${scenarios} scenarios, ${cut} replies cut mid-stream; worker tensors ${baseline}`);
      assert.ok(cut > 0, 'some replies were really cut mid-stream');
      const failed = await t.server.deps.db.selectFrom('messages').select(['id', 'finish_reason']).where('finish_reason', '=', 'error').execute();
      assert.deepEqual(failed, [], 'a disconnect is a cancel, not a failure');
    });

    test('the server still serves a whole reply afterwards', async () => {
      const ws = await TestSocket.open(t.wsUrl, { token });
      try {
        const ex = await ws.request({ type: 'chat', id: 'after', content: 'The end of the story', decoding: { strategy: 'beam_search', beam_width: 3, max_new_tokens: 12 } });
        assert.ok(ex.done, JSON.stringify(ex.error));
        assert.equal(ex.deltas.join(''), ex.done.text);
      } finally {
        ws.close();
      }
      assert.equal((await idle()).numTensors, baseline);
    });
  });
}

interface ClientRun {
  messageId?: number;
  deltas: string[];
}

/** One client: opens a socket, asks for a long reply and goes away at its chosen point. */
async function runClient(t: TestServer, token: string, c: Client, id: string): Promise<ClientRun> {
  const ws = await TestSocket.open(t.wsUrl, { token });
  const decoding =
    c.strategy === 'greedy'
      ? { max_new_tokens: MAX_NEW_TOKENS, repetition_penalty: 1.3 }
      : { strategy: 'beam_search' as const, beam_width: c.beamWidth, max_new_tokens: MAX_NEW_TOKENS, repetition_penalty: 1.3 };
  ws.send({ type: 'chat', id, content: 'Once upon a time in a city by the river', decoding });
  const mine = (f: { type: string; id?: unknown }) => f.id === id;
  const ended = (f: { type: string; id?: unknown }) => mine(f) && (f.type === 'done' || f.type === 'error');
  if (c.leave.at === 'start' || c.leave.at === 'deltas') {
    await ws.waitFor((f) => (mine(f) && f.type === 'start') || ended(f));
  }
  if (c.leave.at === 'deltas') {
    const count = c.leave.count;
    await ws.waitFor(() => ws.frames.filter((f) => mine(f) && f.type === 'delta').length >= count || ws.frames.some(ended));
  }
  if (c.how === 'close') ws.close();
  else ws.ws.terminate();
  await ws.closed;
  const start = ws.frames.find((f): f is StartFrame => f.type === 'start' && f.id === id);
  const error = ws.frames.find((f) => f.type === 'error' && f.id === id);
  assert.equal(error, undefined, `request ${id} failed: ${JSON.stringify(error)}`);
  return { messageId: start?.message_id, deltas: ws.frames.filter((f): f is DeltaFrame => f.type === 'delta' && f.id === id).map((f) => f.text) };
}

/** The reply row once its end is stored (the pump stores it just after the engine lets go). */
async function storedReply(t: TestServer, id: number): Promise<Message> {
  return eventually(async () => {
    const row = await t.server.deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
    return row?.finish_reason ? row : undefined;
  });
}
