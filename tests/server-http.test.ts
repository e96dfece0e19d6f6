// The HTTP side of the server against a real server and database (PGlite; PostgreSQL too when
// DATABASE_URL is set): sessions, conversations, ratings, the admin export and model activation with
// hot swap, the OpenAI-compatible API through the official `openai` client, health, metrics.
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { insertModelVersion } from '../db/index.ts';
import type { ConversationDetail, ModelFrame, ModelVersionInfo } from '../server/protocol.ts';
import { ADMIN_TOKEN, databaseTargets, newSession, startTestServer, TestSocket, tinyCheckpoint, type TestServer } from './helpers/server-harness.ts';

for (const target of databaseTargets()) {
  describe(`HTTP API (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let ws: TestSocket;
    const api = (path: string, init: RequestInit & { auth?: string | null } = {}) =>
      fetch(`${t.url}${path}`, {
        ...init,
        headers: {
          ...(init.body ? { 'Content-Type': 'application/json' } : {}),
          ...(init.auth !== null ? { Authorization: `Bearer ${init.auth ?? token}` } : {}),
          ...(init.headers as Record<string, string>),
        },
      });
    const admin = (path: string, init: RequestInit = {}) => api(path, { ...init, auth: ADMIN_TOKEN });

    before(async () => {
      t = await startTestServer(target, { MAX_FRAME_BYTES: '4096' });
      token = await newSession(t.url);
      ws = await TestSocket.open(t.wsUrl, { token });
    });
    after(async () => {
      ws?.close();
      await t?.close();
    });

    test('POST /api/session returns a token and an HttpOnly cookie; the cookie gets the same session back', async () => {
      const res = await fetch(`${t.url}/api/session`, { method: 'POST' });
      assert.equal(res.status, 201);
      const body = (await res.json()) as { token: string; session_id: number };
      const cookie = res.headers.get('set-cookie')!;
      assert.match(cookie, new RegExp(`^session=${body.token};`));
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Lax/);
      const again = await fetch(`${t.url}/api/session`, { method: 'POST', headers: { Cookie: `session=${body.token}`, Origin: t.url } });
      assert.equal(again.status, 200);
      assert.deepEqual(await again.json(), body);
    });

    test('cookie-authenticated writes need a trusted Origin and a JSON body; bearer requests are exempt', async () => {
      const cookieWrite = (headers: Record<string, string>, body = JSON.stringify({ value: 1 })) =>
        fetch(`${t.url}/api/messages/999999/rating`, { method: 'POST', headers: { Cookie: `session=${token}`, ...headers }, body });
      const code = async (res: Response) => [res.status, ((await res.json()) as { error: { code: string } }).error.code];
      assert.deepEqual(await code(await cookieWrite({ Origin: 'https://evil.example', 'Content-Type': 'application/json' })), [403, 'forbidden']);
      assert.deepEqual(await code(await cookieWrite({ 'Content-Type': 'application/json' })), [403, 'forbidden'], 'no Origin');
      // Another port of the same host is another origin (and the same site, which SameSite=Lax lets through).
      const otherPort = t.url.replace(/:\d+$/, ':1');
      assert.deepEqual(await code(await cookieWrite({ Origin: otherPort, 'Content-Type': 'application/json' })), [403, 'forbidden']);
      assert.deepEqual(await code(await cookieWrite({ Origin: t.url, 'Content-Type': 'text/plain' })), [400, 'bad_request']);
      assert.deepEqual(await code(await cookieWrite({ Origin: t.url, 'Content-Type': 'application/json' })), [404, 'not_found'], 'from its own page: through to the route');
      const bearer = await fetch(`${t.url}/api/messages/999999/rating`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, Origin: 'https://evil.example', 'Content-Type': 'application/json' }, body: JSON.stringify({ value: 1 }) });
      assert.equal(bearer.status, 404, 'a bearer token is not sent by browsers on their own');
    });

    test('every response carries the security headers; the public model list shows no absolute path', async () => {
      for (const path of ['/', '/api/models', '/health', '/api/nothing']) {
        const res = await fetch(`${t.url}${path}`);
        await res.arrayBuffer();
        const csp = res.headers.get('content-security-policy') ?? '';
        assert.match(csp, /default-src 'self'/, path);
        assert.match(csp, /frame-ancestors 'none'/, path);
        assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
        assert.equal(res.headers.get('referrer-policy'), 'no-referrer', path);
      }
      const listed = (await (await fetch(`${t.url}/api/models`)).json()) as { versions: ModelVersionInfo[] };
      assert.ok(listed.versions.length > 0);
      for (const v of listed.versions) assert.ok(!v.checkpoint_path.includes('/'), v.checkpoint_path);
      const full = (await (await admin('/api/admin/models')).json()) as { versions: ModelVersionInfo[] };
      assert.ok(full.versions.every((v) => v.checkpoint_path.startsWith('/')), 'the admin list keeps the path');
    });

    test('REST routes need a session; errors have a stable code', async () => {
      const res = await api('/api/conversations', { auth: null });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
      const missing = await api('/api/nothing-here');
      assert.equal(missing.status, 404);
    });

    test('conversations: list, the whole tree with ratings, rename, delete; another session is forbidden', async () => {
      const first = await ws.request({ type: 'chat', id: 'h1', content: 'Hello   there\nfriend', decoding: { max_new_tokens: 6 } });
      const second = await ws.request({ type: 'regenerate', id: 'h2', message_id: first.done!.message_id, decoding: { max_new_tokens: 6 } });
      const cid = first.start!.conversation_id;
      const rated = await api(`/api/messages/${second.done!.message_id}/rating`, { method: 'POST', body: JSON.stringify({ value: -1, reason: 'dull' }) });
      assert.equal(rated.status, 200);
      const list = (await (await api('/api/conversations')).json()) as { conversations: { id: number; title: string }[] };
      assert.equal(list.conversations[0].id, cid);
      assert.equal(list.conversations[0].title, 'Hello there friend');
      const detail = (await (await api(`/api/conversations/${cid}`)).json()) as ConversationDetail;
      assert.deepEqual(detail.messages.map((m) => [m.role, m.parent_id]), [
        ['user', null],
        ['assistant', first.start!.parent_id],
        ['assistant', first.start!.parent_id],
      ]);
      const reply = detail.messages.find((m) => m.id === second.done!.message_id)!;
      assert.equal(reply.rating, -1);
      assert.equal(reply.content, second.done!.text);
      assert.equal(reply.model_version, second.done!.model_version);
      assert.equal(reply.decoding?.max_new_tokens, 6);
      assert.ok(reply.timings && reply.usage);

      const other = await newSession(t.url);
      for (const [method, path] of [['GET', `/api/conversations/${cid}`], ['DELETE', `/api/conversations/${cid}`]]) {
        assert.equal((await api(path, { method, auth: other })).status, 403);
      }
      const rating = await api(`/api/messages/${reply.id}/rating`, { method: 'POST', auth: other, body: JSON.stringify({ value: 1 }) });
      assert.equal(rating.status, 403);

      const renamed = await api(`/api/conversations/${cid}`, { method: 'PATCH', body: JSON.stringify({ title: 'Greetings' }) });
      assert.equal(((await renamed.json()) as { title: string }).title, 'Greetings');
      assert.equal((await api(`/api/conversations/${cid}`, { method: 'DELETE' })).status, 204);
      assert.equal((await api(`/api/conversations/${cid}`)).status, 404);
      assert.equal((await api('/api/conversations/abc')).status, 400);
    });

    test('the official openai client streams a completion; the stored reply can be rated', async () => {
      const client = new OpenAI({ apiKey: token, baseURL: `${t.url}/v1`, maxRetries: 0 });
      const models = await client.models.list();
      assert.equal(models.data[0].id, 'rlhf-chat');
      const stream = await client.chat.completions.create({
        model: 'rlhf-chat',
        messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'The river flows' }],
        stream: true,
        max_tokens: 16,
        stream_options: { include_usage: true },
        // Extensions.
        ...({ strategy: 'beam_search', beam_width: 3, repetition_penalty: 1.2 } as object),
      });
      let text = '';
      let finish: string | null = null;
      let messageId: number | undefined;
      let usage: { completion_tokens: number } | undefined;
      for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        messageId = (chunk as unknown as { message_id: number }).message_id;
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices[0];
        if (!choice) continue;
        text += choice.delta.content ?? '';
        finish = choice.finish_reason ?? finish;
      }
      assert.ok(finish === 'stop' || finish === 'length');
      assert.ok(usage && usage.completion_tokens > 0);
      const stored = (await (await api(`/api/conversations/${(await (await api('/api/conversations')).json() as { conversations: { id: number }[] }).conversations[0].id}`)).json()) as ConversationDetail;
      assert.deepEqual(stored.messages.map((m) => m.role), ['system', 'user', 'assistant']);
      const reply = stored.messages[2];
      assert.equal(reply.id, messageId);
      assert.equal(reply.content, text);
      assert.equal(reply.decoding?.strategy, 'beam_search');

      const plain = await client.chat.completions.create({ model: 'rlhf-chat', messages: [{ role: 'user', content: 'The river flows' }], max_tokens: 16 });
      assert.equal(plain.object, 'chat.completion');
      assert.equal(plain.id, `chatcmpl-${(plain as unknown as { message_id: number }).message_id}`);
      assert.equal(typeof plain.choices[0].message.content, 'string');
      const rate = await api(`/api/messages/${(plain as unknown as { message_id: number }).message_id}/rating`, { method: 'POST', body: JSON.stringify({ value: 1 }) });
      assert.equal(rate.status, 200);

      await assert.rejects(
        client.chat.completions.create({ model: 'rlhf-chat', messages: [{ role: 'user', content: 'x' }], max_tokens: 5000 }),
        (err: unknown) => err instanceof OpenAI.BadRequestError && /MAX_NEW_TOKENS/.test(err.message),
      );
      const anonymous = new OpenAI({ apiKey: 'wrong', baseURL: `${t.url}/v1`, maxRetries: 0 });
      await assert.rejects(anonymous.chat.completions.create({ model: 'rlhf-chat', messages: [{ role: 'user', content: 'x' }] }), OpenAI.AuthenticationError);
    });

    test('admin export returns the preference pair as JSONL in TRL format; admin routes need the admin token', async () => {
      const a = await ws.request({ type: 'chat', id: 'e1', content: 'Name a colour', decoding: { max_new_tokens: 6 } });
      const b = await ws.request({ type: 'regenerate', id: 'e2', message_id: a.done!.message_id, decoding: { strategy: 'sample', seed: 3, max_new_tokens: 6 } });
      await api(`/api/messages/${a.done!.message_id}/rating`, { method: 'POST', body: JSON.stringify({ value: 1 }) });
      await api(`/api/messages/${b.done!.message_id}/rating`, { method: 'POST', body: JSON.stringify({ value: -1 }) });

      assert.equal((await api('/api/admin/export')).status, 401, 'a session token is not the admin token');
      const res = await admin('/api/admin/export');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /ndjson/);
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
      const pair = lines.find((p) => p.chosen_message_id === a.done!.message_id);
      assert.ok(pair, JSON.stringify(lines));
      assert.deepEqual(pair.prompt, [{ role: 'user', content: 'Name a colour' }]);
      assert.deepEqual(pair.chosen, [{ role: 'assistant', content: a.done!.text }]);
      assert.deepEqual(pair.rejected, [{ role: 'assistant', content: b.done!.text }]);
      assert.equal(pair.rejected_message_id, b.done!.message_id);
      const alias = await admin('/api/feedback/export?source=siblings');
      assert.equal((await alias.text()).trim().split('\n').length, lines.filter((l) => l.source === 'siblings').length);

      // The dashboard's counts: ratings by value, pairs by source, thumbs per version that wrote the reply.
      assert.equal((await api('/api/admin/stats')).status, 401);
      const stats = await (await admin('/api/admin/stats')).json();
      assert.ok(stats.ratings.up >= 1 && stats.ratings.down >= 1 && stats.ratings.total === stats.ratings.up + stats.ratings.down);
      assert.equal(stats.pairs.total, Object.values(stats.pairs.by_source as Record<string, number>).reduce((x, y) => x + y, 0));
      assert.ok(stats.pairs.by_source.siblings >= 1);
      const served = t.server.deps.models.current!.id;
      const row = stats.by_version.find((v: { model_version: number }) => v.model_version === served);
      assert.ok(row && row.up >= 1 && row.down >= 1, JSON.stringify(stats.by_version));
      const runs = await (await admin('/api/admin/runs')).json();
      assert.ok(Array.isArray(runs.runs));
    });

    test('activating another version hot-swaps it (clients are told, new replies carry it); rollback restores the previous', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'server-v2-'));
      try {
        await cp(await tinyCheckpoint(), join(dir, 'v2'), { recursive: true });
        const before = t.server.deps.models.current!.id;
        const v2 = await insertModelVersion(t.server.deps.db, { kind: 'policy', checkpointPath: join(dir, 'v2'), sha256: t.server.deps.models.current!.sha256, parentId: before });
        const from = ws.frames.length;
        const res = await admin(`/api/admin/models/${v2.id}/activate`, { method: 'POST' });
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(((await res.json()) as { version: ModelVersionInfo }).version.status, 'active');
        assert.equal((await ws.waitFor<ModelFrame>((f) => f.type === 'model', { from })).version, v2.id);
        const reply = await ws.request({ type: 'chat', id: 'v1', content: 'hi', decoding: { max_new_tokens: 3 } });
        assert.equal(reply.done?.model_version, v2.id);
        const listed = (await (await fetch(`${t.url}/api/models`)).json()) as { serving: number; versions: ModelVersionInfo[] };
        assert.equal(listed.serving, v2.id);
        assert.equal(listed.versions.find((v) => v.id === before)?.status, 'retired');

        const back = await admin('/api/admin/models/rollback', { method: 'POST' });
        assert.equal(((await back.json()) as { version: ModelVersionInfo }).version.id, before);
        assert.equal((await ws.request({ type: 'chat', id: 'v2', content: 'hi', decoding: { max_new_tokens: 3 } })).done?.model_version, before);

        const broken = await insertModelVersion(t.server.deps.db, { kind: 'policy', checkpointPath: join(dir, 'missing'), sha256: 'ab'.repeat(32) });
        const refused = await admin(`/api/admin/models/${broken.id}/activate`, { method: 'POST' });
        assert.equal(refused.status, 409);
        assert.equal(t.server.deps.models.current!.id, before, 'the old model keeps serving');
        assert.equal((await admin(`/api/admin/models/${broken.id}/activate`, { method: 'POST' })).status, 409, 'now marked rejected');
        assert.equal((await api(`/api/admin/models/${before}/activate`, { method: 'POST' })).status, 401);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test('/health reports database, model, backend and version; /metrics is Prometheus text', async () => {
      const res = await fetch(`${t.url}/health`);
      assert.equal(res.status, 200);
      const health = (await res.json()) as { ready: boolean; database: { ok: boolean; kind: string }; model: { loaded: boolean; version: number }; backend: { name: string } };
      assert.equal(health.ready, true);
      assert.equal(health.database.ok, true);
      assert.equal(health.database.kind, target.name === 'PGlite' ? 'pglite' : 'postgres');
      assert.equal(health.model.version, t.server.deps.models.current!.id);
      assert.ok(health.backend.name);
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      for (const name of [
        'http_requests_total',
        'chat_tokens_generated_total',
        'chat_time_to_first_token_seconds_bucket',
        'chat_inter_token_latency_seconds_bucket',
        'engine_live_sequences',
        'engine_queue_length',
        'feedback_ratings',
        'feedback_pairs{source="siblings"}',
      ]) {
        assert.ok(metrics.includes(name), `metrics lack ${name}`);
      }
      assert.match(metrics, /chat_tokens_generated_total [1-9]/);
    });

    test('bodies over MAX_FRAME_BYTES are refused with 413; bad bodies with 400 naming the field', async () => {
      const big = await api('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] }) });
      assert.equal(big.status, 413);
      assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'too_large');
      const bad = await api('/api/messages/1/rating', { method: 'POST', body: JSON.stringify({ value: 5 }) });
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: { message: string } }).error.message, /value must be 1, -1 or 0/);
    });

    test('the web client is served at / (or a page saying it is not built)', async () => {
      const res = await fetch(`${t.url}/`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /text\/html/);
    });
  });
}
