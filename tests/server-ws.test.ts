// The WebSocket API against a real server (ephemeral loopback port, real engine worker with a tiny
// trained model, real database: in-memory PGlite, and a scratch PostgreSQL database when DATABASE_URL
// is set), driven by a real `ws` client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { exportPairs, getMessage, listPairsForMessage } from '../db/index.ts';
import type { DoneFrame, ErrorFrame, ModelFrame, RatedFrame } from '../server/protocol.ts';
import { databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

for (const target of databaseTargets()) {
  describe(`WebSocket API (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let ws: TestSocket;
    let nextId = 1;
    const rid = () => `r${nextId++}`;

    before(async () => {
      t = await startTestServer(target, { MAX_INFLIGHT_PER_SESSION: '4', MAX_FRAME_BYTES: '4096', MAX_PROMPT_CHARS: '500' });
      token = await newSession(t.url);
      ws = await TestSocket.open(t.wsUrl, { token });
    });
    after(async () => {
      ws?.close();
      await t?.close();
    });

    test('a new socket is told the model version serving it', async () => {
      const frame = await ws.waitFor<ModelFrame>((f) => f.type === 'model');
      assert.equal(frame.version, t.server.deps.models.current!.id);
    });

    test('a greedy reply streams deltas that concatenate to done.text, and is stored with its metadata', async () => {
      const id = rid();
      const ex = await ws.request({ type: 'chat', id, content: 'The game was', decoding: { max_new_tokens: 24 } });
      assert.ok(ex.start && ex.done, JSON.stringify(ex));
      assert.ok(ex.deltas.length > 1);
      assert.equal(ex.deltas.join(''), ex.done.text);
      assert.equal(ex.done.message_id, ex.start.message_id);
      assert.equal(ex.done.model_version, t.server.deps.models.current!.id);
      assert.ok(['stop', 'length'].includes(ex.done.finish_reason));
      const stored = await getMessage(t.server.deps.db, ex.done.message_id);
      assert.equal(stored?.content, ex.done.text);
      assert.equal(stored?.parent_id, ex.start.parent_id);
      assert.equal(stored?.model_version_id, ex.done.model_version);
      assert.equal(stored?.finish_reason, ex.done.finish_reason);
      assert.equal(stored?.completion_tokens, ex.done.usage.completion_tokens);
      assert.equal((stored?.decoding as { strategy: string }).strategy, 'greedy');
      assert.ok(stored!.timings!.ttft_ms <= stored!.timings!.total_ms);
      const user = await getMessage(t.server.deps.db, ex.start.parent_id!);
      assert.deepEqual([user?.role, user?.content, user?.parent_id], ['user', 'The game was', null]);
    });

    test('a beam-search reply streams only settled text: deltas still concatenate to done.text', async () => {
      const ex = await ws.request({ type: 'chat', id: rid(), content: 'The city of', decoding: { strategy: 'beam_search', beam_width: 4, max_new_tokens: 24 } });
      assert.ok(ex.done, JSON.stringify(ex.error));
      assert.equal(ex.deltas.join(''), ex.done.text);
      assert.ok(ex.done.text.length > 0);
    });

    test('cancel mid-stream ends the reply as "cancelled", stores it so, and frees the engine slot', async () => {
      const id = rid();
      ws.send({ type: 'chat', id, content: 'The history of', decoding: { max_new_tokens: 256, repetition_penalty: 1.2 } });
      await ws.waitFor((f) => f.type === 'delta' && f.id === id);
      ws.send({ type: 'cancel', id });
      const ex = await ws.exchange(id);
      assert.equal(ex.done?.finish_reason, 'cancelled');
      assert.ok(ex.done!.usage.completion_tokens < 256);
      assert.equal(ex.deltas.join(''), ex.done!.text);
      assert.equal((await getMessage(t.server.deps.db, ex.done!.message_id))?.finish_reason, 'cancelled');
      await eventually(() => t.server.deps.engine.requestsInFlight === 0, { what: 'the slot to be freed' });
    });

    test('closing the socket stops its generations at once', async () => {
      const other = await TestSocket.open(t.wsUrl, { token });
      const id = rid();
      other.send({ type: 'chat', id, content: 'Once upon a time', decoding: { max_new_tokens: 256, repetition_penalty: 1.2 } });
      const start = await other.waitFor((f) => f.type === 'start' && f.id === id);
      await other.waitFor((f) => f.type === 'delta' && f.id === id);
      other.close();
      await eventually(() => t.server.deps.engine.requestsInFlight === 0, { timeoutMs: 3000, what: 'the generation to stop' });
      const stored = await eventually(async () => {
        const m = await getMessage(t.server.deps.db, (start as { message_id: number }).message_id);
        return m?.finish_reason ? m : undefined;
      });
      assert.equal(stored.finish_reason, 'cancelled');
      assert.ok(stored.completion_tokens! < 256);
    });

    test('regenerate + opposite ratings make exactly one pair; rating again updates it', async () => {
      const first = await ws.request({ type: 'chat', id: rid(), content: 'Tell me about the war', decoding: { max_new_tokens: 12 } });
      const second = await ws.request({ type: 'regenerate', id: rid(), message_id: first.done!.message_id, decoding: { strategy: 'sample', seed: 7, max_new_tokens: 12 } });
      assert.ok(second.done, JSON.stringify(second.error));
      assert.equal(second.start!.parent_id, first.start!.parent_id, 'a regenerated reply is a sibling');
      assert.notEqual(second.done.message_id, first.done!.message_id);
      const [a, b] = [first.done!.message_id, second.done.message_id];
      const rate = async (message_id: number, value: 1 | -1 | 0) => {
        const id = rid();
        ws.send({ type: 'rate', id, message_id, value });
        return ws.waitFor<RatedFrame>((f) => f.type === 'rated' && f.id === id);
      };
      assert.deepEqual((await rate(a, 1)).pairs, []);
      const rated = await rate(b, -1);
      assert.equal(rated.pairs.length, 1);
      let pairs = await listPairsForMessage(t.server.deps.db, a);
      assert.equal(pairs.length, 1);
      assert.deepEqual([pairs[0].chosen_message_id, pairs[0].rejected_message_id, pairs[0].source], [a, b, 'siblings']);
      // Rating the same way again keeps the pair; flipping both flips it; 0 removes it.
      assert.deepEqual((await rate(b, -1)).pairs, rated.pairs);
      await rate(a, -1);
      const flipped = await rate(b, 1);
      pairs = await listPairsForMessage(t.server.deps.db, a);
      assert.equal(pairs.length, 1);
      assert.deepEqual([pairs[0].chosen_message_id, pairs[0].rejected_message_id], [b, a]);
      assert.deepEqual(flipped.pairs, [pairs[0].id]);
      assert.deepEqual((await rate(b, 0)).pairs, []);
      assert.equal((await listPairsForMessage(t.server.deps.db, a)).length, 0);
    });

    test('compare streams two replies under one user message; choose records one compare pair', async () => {
      const [ia, ib] = [rid(), rid()];
      ws.send({ type: 'compare', content: 'What is a river', a: { id: ia, decoding: { max_new_tokens: 10 } }, b: { id: ib, decoding: { strategy: 'beam_search', beam_width: 3, max_new_tokens: 10 } } });
      const [ea, eb] = await Promise.all([ws.exchange(ia), ws.exchange(ib)]);
      assert.ok(ea.done && eb.done, JSON.stringify([ea.error, eb.error]));
      assert.equal(ea.start!.parent_id, eb.start!.parent_id);
      assert.equal(ea.deltas.join(''), ea.done.text);
      assert.equal(eb.deltas.join(''), eb.done.text);
      ws.send({ type: 'choose', id: 'c1', a: ea.done.message_id, b: eb.done.message_id, choice: 'b' });
      const chosen = await ws.waitFor((f) => f.type === 'chosen' && f.id === 'c1');
      assert.equal((chosen as { pairs: number[] }).pairs.length, 1);
      const pair = (await exportPairs(t.server.deps.db)).find((p) => p.id === (chosen as { pairs: number[] }).pairs[0]);
      assert.deepEqual([pair?.source, pair?.chosen_message_id, pair?.rejected_message_id], ['compare', eb.done.message_id, ea.done.message_id]);
    });

    test('another session can neither continue, regenerate nor rate the conversation (forbidden)', async () => {
      const mine = await ws.request({ type: 'chat', id: rid(), content: 'secret', decoding: { max_new_tokens: 4 } });
      const intruder = await TestSocket.open(t.wsUrl, { token: await newSession(t.url) });
      try {
        const tries = [
          await intruder.request({ type: 'chat', id: 'x1', conversation_id: mine.start!.conversation_id, content: 'hi' }),
          await intruder.request({ type: 'chat', id: 'x2', parent_id: mine.done!.message_id, content: 'hi' }),
          await intruder.request({ type: 'regenerate', id: 'x3', message_id: mine.done!.message_id }),
        ];
        for (const ex of tries) assert.equal(ex.error?.code, 'forbidden', JSON.stringify(ex));
        intruder.send({ type: 'rate', id: 'x4', message_id: mine.done!.message_id, value: 1 });
        const err = await intruder.waitFor<ErrorFrame>((f) => f.type === 'error' && f.id === 'x4');
        assert.equal(err.code, 'forbidden');
        assert.equal((await listPairsForMessage(t.server.deps.db, mine.done!.message_id)).length, 0);
      } finally {
        intruder.close();
      }
    });

    test('malformed frames get error frames and the socket stays open', async () => {
      const from = ws.frames.length;
      const bad: [string | Buffer, RegExp][] = [
        ['{not json', /not valid JSON/],
        ['[1,2]', /JSON object/],
        [JSON.stringify({ type: 'shout', id: 1 }), /unknown frame type "shout"/],
        [JSON.stringify({ type: 'chat', id: 'm1' }), /content/],
        [JSON.stringify({ type: 'chat', id: 'm2', content: 'hi', colour: 'red' }), /unknown field 'colour'/],
        [JSON.stringify({ type: 'rate', message_id: 1, value: 2 }), /value must be 1, -1 or 0/],
        [Buffer.from([1, 2, 3]), /binary/],
      ];
      for (const [frame] of bad) ws.send(frame);
      const errors: ErrorFrame[] = [];
      for (let i = 0; i < bad.length; i++) {
        errors.push(await ws.waitFor<ErrorFrame>((f) => f.type === 'error' && !errors.includes(f as ErrorFrame), { from }));
      }
      for (const [i, [, pattern]] of bad.entries()) {
        assert.equal(errors[i].code, 'bad_request');
        assert.match(errors[i].message, pattern);
      }
      assert.equal(errors[3].id, 'm1', 'the error names the request when its id is readable');
      // Bad decoding options and limits are errors of the request, named with their range.
      const opt = await ws.request({ type: 'chat', id: 'm3', content: 'hi', decoding: { beam_width: 0 } });
      assert.match(opt.error!.message, /beam_width must be an integer in \[1, 16\]/);
      const cap = await ws.request({ type: 'chat', id: 'm4', content: 'hi', decoding: { max_new_tokens: 1000 } });
      assert.match(cap.error!.message, /MAX_NEW_TOKENS/);
      const long = await ws.request({ type: 'chat', id: 'm5', content: 'x'.repeat(501) });
      assert.equal(long.error!.code, 'too_large');
      assert.match(long.error!.message, /MAX_PROMPT_CHARS/);
      // Still open and working.
      const ok = await ws.request({ type: 'chat', id: rid(), content: 'still here', decoding: { max_new_tokens: 3 } });
      assert.ok(ok.done);
    });

    test('more requests in flight than MAX_INFLIGHT_PER_SESSION get rate_limited', async () => {
      const ids = Array.from({ length: 5 }, rid);
      for (const id of ids) ws.send({ type: 'chat', id, content: 'count to ten', decoding: { max_new_tokens: 40 } });
      const results = await Promise.all(ids.map((id) => ws.exchange(id)));
      assert.equal(results.filter((r) => r.done).length, 4);
      assert.equal(results[4].error?.code, 'rate_limited');
      assert.match(results[4].error!.message, /MAX_INFLIGHT_PER_SESSION/);
    });

    test('8 users streaming at once all complete, sharing batched decode steps', async () => {
      const sockets = await Promise.all(Array.from({ length: 8 }, async () => TestSocket.open(t.wsUrl, { token: await newSession(t.url) })));
      try {
        const before = await t.server.deps.engine.stats();
        let peakRows = 0;
        let finished = false;
        const watching = (async () => {
          while (!finished && peakRows < 8) {
            peakRows = Math.max(peakRows, (await t.server.deps.engine.stats()).liveRows);
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        const results = await Promise.all(
          sockets.map((s, i) => s.request({ type: 'chat', id: `u${i}`, content: `Story number ${i} begins`, decoding: { max_new_tokens: 32, repetition_penalty: 1.2 } })),
        );
        finished = true;
        await watching;
        const after = await t.server.deps.engine.stats();
        const dones = results.map((r) => r.done).filter((d): d is DoneFrame => d !== undefined);
        assert.equal(dones.length, 8, JSON.stringify(results.map((r) => r.error)));
        for (const [i, r] of results.entries()) assert.equal(r.deltas.join(''), dones[i].text);
        const tokens = dones.reduce((n, d) => n + d.usage.completion_tokens, 0);
        const steps = after.steps - before.steps;
        assert.ok(steps < tokens, `batched: ${steps} decode steps for ${tokens} tokens`);
        assert.ok(peakRows > 1, `peak live rows ${peakRows}`);
      } finally {
        for (const s of sockets) s.close();
      }
    });

    test('a frame over MAX_FRAME_BYTES closes the socket with 1009', async () => {
      const s = await TestSocket.open(t.wsUrl, { token });
      s.send({ type: 'chat', id: 'big', content: 'x'.repeat(5000) });
      assert.equal((await s.closed).code, 1009);
    });

    test('the upgrade needs a session token and an allowed Origin', async () => {
      await assert.rejects(TestSocket.open(t.wsUrl), /unexpected response 401/);
      await assert.rejects(TestSocket.open(t.wsUrl, { token: 'not-a-session' }), /unexpected response 401/);
      await assert.rejects(TestSocket.open(t.wsUrl, { token, headers: { Origin: 'https://evil.example' } }), /unexpected response 403/);
      const sameOrigin = await TestSocket.open(t.wsUrl, { token, headers: { Origin: t.url } });
      sameOrigin.close();
      // DNS rebinding: a page whose own name resolves to this server sends matching Origin and Host.
      const port = new URL(t.url).port;
      await assert.rejects(TestSocket.open(t.wsUrl, { token, headers: { Origin: `http://rebind.example:${port}`, Host: `rebind.example:${port}` } }), /unexpected response 403/);
      const byCookie = await TestSocket.open(t.wsUrl, { headers: { Cookie: `session=${token}` } });
      byCookie.close();
    });
  });
}
