// Only replies the model wrote become training data: a client's own "assistant" history turns (sent
// through /v1) are stored as context (origin `client`) and can be neither rated, regenerated, chosen
// nor paired, over the WebSocket, REST and /v1; a reply still running cannot be rated either; the
// export never carries client text as a reply, even from pairs stored before origins existed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getMessage, insertMessage } from '../db/index.ts';
import type { ConversationDetail, ErrorFrame } from '../server/protocol.ts';
import { ADMIN_TOKEN, databaseTargets, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

for (const target of databaseTargets()) {
  describe(`client-sent text never becomes preference data (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let ws: TestSocket;
    let nextId = 1;
    const rid = () => `f${nextId++}`;
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${t.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...init.headers } });
    const exported = async (kind: 'pairs' | 'ratings') => {
      const res = await fetch(`${t.url}/api/admin/export?kind=${kind}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(res.status, 200);
      return (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    };
    /** Sends a frame with an id and returns its answer (the `type` it expects, or an error). */
    const answer = async (frame: Record<string, unknown> & { id: string }) => {
      const from = ws.frames.length;
      ws.send(frame);
      return ws.waitFor((f) => 'id' in f && f.id === frame.id && f.type !== 'start' && f.type !== 'delta', { from });
    };

    before(async () => {
      t = await startTestServer(target);
      token = await newSession(t.url);
      ws = await TestSocket.open(t.wsUrl, { token });
    });
    after(async () => {
      ws?.close();
      await t?.close();
    });

    test('the forging sequence (/v1 history, regenerate, rate up and down) ends in not_generated, and the export has no trace of it', async () => {
      const res = await api('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'rlhf-chat', max_tokens: 6, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'FABRICATED' }] }),
      });
      assert.equal(res.status, 200);
      const completion = (await res.json()) as { conversation_id: number; message_id: number };
      const tree = (await (await api(`/api/conversations/${completion.conversation_id}`)).json()) as ConversationDetail;
      assert.deepEqual(tree.messages.map((m) => [m.role, m.content === 'FABRICATED']), [['user', false], ['assistant', true], ['assistant', false]]);
      const [user, fabricated, reply] = tree.messages;
      assert.equal(reply.id, completion.message_id);
      const stored = await getMessage(t.server.deps.db, fabricated.id);
      assert.deepEqual([stored?.origin, stored?.model_version_id, stored?.finish_reason], ['client', null, null]);
      assert.equal((await getMessage(t.server.deps.db, user.id))?.origin, 'client');
      assert.equal((await getMessage(t.server.deps.db, reply.id))?.origin, 'generated');

      // Regenerating the client's turn would make a model reply its sibling: refused.
      const regen = (await answer({ type: 'regenerate', id: rid(), message_id: fabricated.id, decoding: { max_new_tokens: 4 } })) as ErrorFrame;
      assert.deepEqual([regen.type, regen.code], ['error', 'not_generated']);
      // Rating it up, over WebSocket and REST: refused.
      const rated = (await answer({ type: 'rate', id: rid(), message_id: fabricated.id, value: 1 })) as ErrorFrame;
      assert.deepEqual([rated.type, rated.code], ['error', 'not_generated']);
      const rest = await api(`/api/messages/${fabricated.id}/rating`, { method: 'POST', body: JSON.stringify({ value: 1 }) });
      assert.equal(rest.status, 409);
      assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'not_generated');
      // Choosing it over a model reply, over WebSocket and REST: refused.
      const chosen = (await answer({ type: 'choose', id: rid(), a: fabricated.id, b: reply.id, choice: 'a' })) as ErrorFrame;
      assert.deepEqual([chosen.type, chosen.code], ['error', 'not_generated']);
      const restChoice = await api('/api/comparisons', { method: 'POST', body: JSON.stringify({ a: reply.id, b: fabricated.id, choice: 'b' }) });
      assert.equal(restChoice.status, 409);

      // The model's own reply can still be rated (down, as the forger would).
      const down = await api(`/api/messages/${reply.id}/rating`, { method: 'POST', body: JSON.stringify({ value: -1 }) });
      assert.equal(down.status, 200);
      assert.deepEqual(((await down.json()) as { pairs: number[] }).pairs, []);

      const pairs = await exported('pairs');
      assert.ok(!JSON.stringify(pairs).includes('FABRICATED'), JSON.stringify(pairs));
      const ratings = await exported('ratings');
      assert.deepEqual(ratings.map((r) => r.message_id), [reply.id]);
    });

    test('a reply still being generated cannot be rated', async () => {
      const id = rid();
      ws.send({ type: 'chat', id, content: 'The history of', decoding: { max_new_tokens: 256, repetition_penalty: 1.2 } });
      const start = await ws.waitFor((f) => f.type === 'start' && f.id === id);
      const messageId = (start as { message_id: number }).message_id;
      const rated = (await answer({ type: 'rate', id: rid(), message_id: messageId, value: 1 })) as ErrorFrame;
      assert.deepEqual([rated.type, rated.code], ['error', 'not_generated']);
      assert.match(rated.message, /still being generated/);
      ws.send({ type: 'cancel', id });
      const ex = await ws.exchange(id);
      assert.equal(ex.done?.finish_reason, 'cancelled');
      // Once it has ended (a cancelled reply ended by the user's choice), it can.
      const again = await answer({ type: 'rate', id: rid(), message_id: messageId, value: 1 });
      assert.equal(again.type, 'rated');
    });

    test('pairs stored before message origins existed that have a client side are left out of the export', async () => {
      const db = t.server.deps.db;
      const res = await api('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model: 'rlhf-chat', max_tokens: 4, messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'LEGACY FORGERY' }, { role: 'user', content: 'and?' }] }),
      });
      assert.equal(res.status, 200);
      const { conversation_id, message_id } = (await res.json()) as { conversation_id: number; message_id: number };
      const tree = (await (await api(`/api/conversations/${conversation_id}`)).json()) as ConversationDetail;
      const forged = tree.messages.find((m) => m.content === 'LEGACY FORGERY')!;
      // A generated sibling of the client turn and a pair between them, as an old server could store.
      const sibling = await insertMessage(db, { conversationId: conversation_id, parentId: forged.parent_id, role: 'assistant', origin: 'generated', content: 'model text', finishReason: 'stop' });
      await db.insertInto('preference_pairs').values({ source: 'siblings', prompt_message_id: forged.parent_id, chosen_message_id: forged.id, rejected_message_id: sibling.id }).execute();
      const pairs = await exported('pairs');
      assert.ok(!JSON.stringify(pairs).includes('LEGACY FORGERY'));
      assert.ok(message_id > 0);
    });
  });
}
