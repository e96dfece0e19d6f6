// Limits per client address, against a real server: 30 sessions from one address neither get more
// engine rows than one address may hold nor keep a second client waiting behind them. The clients'
// addresses are presented through X-Forwarded-For with TRUST_PROXY=1, as a reverse proxy would send them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ServerFrame } from '../server/protocol.ts';
import { databaseTargets, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

const CROWD = '198.51.100.1';
const OTHER = '203.0.113.9';

for (const target of databaseTargets()) {
  describe(`limits per client address (${target.name})`, () => {
    let t: TestServer;
    const sessionFrom = async (address: string) => {
      const res = await fetch(`${t.url}/api/session`, { method: 'POST', headers: { 'X-Forwarded-For': `10.9.9.9, ${address}` } });
      return { status: res.status, token: res.status === 201 ? ((await res.json()) as { token: string }).token : '', retryAfter: res.headers.get('Retry-After') };
    };

    before(async () => {
      t = await startTestServer(target, {
        TRUST_PROXY: '1',
        ENGINE_MAX_ROWS: '4',
        ENGINE_MAX_QUEUE: '8',
        MAX_INFLIGHT_PER_SESSION: '4',
        MAX_INFLIGHT_PER_ADDRESS: '6',
        SESSIONS_PER_ADDRESS_PER_MINUTE: '30',
        FEEDBACK_PER_ADDRESS_PER_MINUTE: '5',
      });
    });
    after(async () => {
      await t?.close();
    });

    test('30 sessions of one address hold at most MAX_INFLIGHT_PER_ADDRESS; a second client is neither busy nor queued behind them', async () => {
      const crowd: TestSocket[] = [];
      for (let i = 0; i < 30; i++) {
        const { status, token } = await sessionFrom(CROWD);
        assert.equal(status, 201);
        crowd.push(await TestSocket.open(t.wsUrl, { token, headers: { 'X-Forwarded-For': CROWD } }));
      }
      // The 31st session of the minute from that address is refused; another address still gets one.
      const refused = await sessionFrom(CROWD);
      assert.deepEqual([refused.status, Number(refused.retryAfter) > 0], [429, true]);
      const other = await sessionFrom(OTHER);
      assert.equal(other.status, 201);
      // Opened before the crowd asks, so that its request reaches the engine one frame later.
      const ws = await TestSocket.open(t.wsUrl, { token: other.token, headers: { 'X-Forwarded-For': OTHER } });
      try {
        // Every crowd session asks for 4 long replies at once: 120 requests. Sampled at a high
        // temperature, the end-of-turn token is as unlikely as any other, so the crowd's rows stay busy
        // for 256 steps (the server's cap): none frees before the other client's request is queued.
        const long = { strategy: 'sample', temperature: 3, seed: 1, max_new_tokens: 256 };
        const ids = crowd.map((ws, s) => [0, 1, 2, 3].map((k) => `c${s}-${k}`));
        crowd.forEach((ws, s) => ids[s].forEach((id) => ws.send({ type: 'chat', id, content: 'Tell me a long story about the city', decoding: long })));
        const ended = (ws: TestSocket, id: string) => ws.waitFor((f) => 'id' in f && f.id === id && (f.type === 'start' || f.type === 'error'), { timeoutMs: 60_000 });
        const first = await Promise.all(crowd.flatMap((ws, s) => ids[s].map((id) => ended(ws, id))));
        const accepted = first.filter((f) => f.type === 'start').length;
        const limited = first.filter((f) => f.type === 'error' && f.code === 'rate_limited').length;
        assert.equal(accepted, 6, 'MAX_INFLIGHT_PER_ADDRESS requests of the crowd are taken');
        assert.equal(limited, 120 - 6);

        // The crowd fills the 4 rows and has 2 requests waiting when the other client asks.
        const all = () => crowd.flatMap((ws) => ws.frames.map((f) => f));
        const deltaOf = (frames: ServerFrame[], id: string) => frames.some((f) => f.type === 'delta' && f.id === id);
        const running = () => crowd.flatMap((ws, s) => ids[s].filter((id) => deltaOf(ws.frames, id)));
        const deadline = Date.now() + 30_000;
        while (running().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const waiting = crowd.flatMap((ws, s) => ids[s].filter((id) => ws.frames.some((f) => f.type === 'start' && f.id === id) && !deltaOf(ws.frames, id)));
        assert.equal(waiting.length, 2, `2 crowd requests wait for a row (${all().length} frames)`);

        const order: string[] = [];
        const watch = (socket: TestSocket, id: string) => socket.waitFor((f) => f.type === 'delta' && f.id === id, { timeoutMs: 60_000 }).then(() => order.push(id));
        const watched = [watch(ws, 'other'), ...waiting.map((id) => watch(crowd.find((c) => c.frames.some((f) => 'id' in f && f.id === id))!, id))];
        const ex = await ws.request({ type: 'chat', id: 'other', content: 'The game was', decoding: { max_new_tokens: 8 } });
        assert.ok(ex.done, `the other client is served, not refused: ${JSON.stringify(ex.error)}`);
        await Promise.all(watched);
        // In turn: the first row the crowd frees goes to the address holding none, before the crowd's queued two.
        assert.equal(order[0], 'other', order.join(' '));
      } finally {
        ws.close();
        crowd.forEach((c) => c.close());
      }
    });

    test('ratings and choices count against FEEDBACK_PER_ADDRESS_PER_MINUTE across the sessions of an address', async () => {
      const feedback = async (address: string, path: string, body: object) => {
        const { token } = await sessionFrom(address);
        const res = await fetch(`${t.url}${path}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'X-Forwarded-For': address },
          body: JSON.stringify(body),
        });
        return res.status === 429 ? ((await res.json()) as { error: { code: string } }).error.code : res.status;
      };
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push(await feedback('192.0.2.77', '/api/messages/999999/rating', { value: 1 }));
      for (let i = 0; i < 3; i++) statuses.push(await feedback('192.0.2.77', '/api/comparisons', { a: 999998, b: 999999, choice: 'a' }));
      // Five counted (and refused for their unknown messages), the sixth refused by the limit.
      assert.deepEqual(statuses, [404, 404, 404, 404, 404, 'rate_limited']);
      assert.equal(await feedback('192.0.2.78', '/api/messages/999999/rating', { value: 1 }), 404, 'another address has its own share');
    });
  });
}
