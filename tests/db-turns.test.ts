// A new turn stored in one statement (insertTurn): the conversation, the client messages each under
// the previous one, and the empty reply rows; and the ends of several replies stored in one statement
// (finishMessages); on PGlite and (with DATABASE_URL) PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { conversationThread, createConversation, findThread, finishMessages, getConversation, getMessage, insertModelVersion, insertTurn, insertTurns, listConversationMessages, RepoError, type DatabaseHandle } from '../db/index.ts';
import { databaseTargets, openWithSession } from './helpers/scratch-database.ts';

const targets = databaseTargets('test_turns');

for (const target of targets) {
  describe(`insertTurn on ${target.name}`, () => {
    let handle: DatabaseHandle;
    let sessionId: number;
    before(async () => {
      ({ handle, sessionId } = await openWithSession(target));
    });
    after(() => handle?.close());

    it('a new conversation with a history of turns and two replies: one chain, replies as siblings', async () => {
      const decoding = { strategy: 'greedy', max_new_tokens: 8 };
      const turns = [
        { role: 'system' as const, content: 'be brief' },
        { role: 'user' as const, content: 'hi' },
        { role: 'assistant' as const, content: 'hello' },
        { role: 'user' as const, content: 'how are you?' },
      ];
      const t = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'hi', parentId: null, turns, replies: [{ decoding }, { decoding: { ...decoding, strategy: 'sample' } }] });
      const conversation = await getConversation(handle.db, t.conversationId);
      assert.deepEqual([conversation?.session_id, conversation?.title], [sessionId, 'hi']);
      const rows = await listConversationMessages(handle.db, t.conversationId);
      assert.equal(rows.length, 6);
      const [system, hi, hello, how, a, b] = rows;
      assert.deepEqual(rows.slice(0, 4).map((m) => [m.role, m.content, m.origin]), turns.map((x) => [x.role, x.content, 'client']));
      assert.deepEqual([system.parent_id, hi.parent_id, hello.parent_id, how.parent_id], [null, system.id, hi.id, hello.id]);
      assert.equal(t.parentId, how.id);
      assert.deepEqual(new Set(t.replyIds), new Set([a.id, b.id]));
      for (const r of [a, b]) assert.deepEqual([r.role, r.origin, r.parent_id, r.content, r.finish_reason], ['assistant', 'generated', how.id, '', null]);
      assert.deepEqual(rows.find((m) => m.id === t.replyIds[1])?.decoding, { ...decoding, strategy: 'sample' });
    });

    it('into an existing conversation: under the given parent, and the conversation is bumped', async () => {
      const first = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'x', parentId: null, turns: [{ role: 'user', content: 'one' }], replies: [{ decoding: {} }] });
      const before = (await getConversation(handle.db, first.conversationId))!.updated_at;
      await new Promise((r) => setTimeout(r, 5));
      const next = await insertTurn(handle.db, { conversationId: first.conversationId, sessionId, title: 'ignored', parentId: first.replyIds[0], turns: [{ role: 'user', content: 'two' }], replies: [{ decoding: {} }] });
      const after = (await getConversation(handle.db, first.conversationId))!;
      assert.equal(next.conversationId, first.conversationId);
      assert.equal(after.title, 'x');
      assert.ok(after.updated_at > before, `updated_at ${after.updated_at.toISOString()} after ${before.toISOString()}`);
      const rows = await listConversationMessages(handle.db, first.conversationId);
      assert.equal(rows.find((m) => m.id === next.parentId)?.parent_id, first.replyIds[0]);
      // A regenerate: no new turns, the reply row straight under the given parent.
      const again = await insertTurn(handle.db, { conversationId: first.conversationId, sessionId, title: '', parentId: next.parentId, turns: [], replies: [{ decoding: {} }] });
      assert.equal(again.parentId, next.parentId);
      assert.equal((await listConversationMessages(handle.db, first.conversationId)).find((m) => m.id === again.replyIds[0])?.parent_id, next.parentId);
      // Where a chat without parent_id continues: the owner and the thread down to the newest message.
      const continued = await conversationThread(handle.db, first.conversationId);
      assert.equal(continued?.sessionId, sessionId);
      assert.deepEqual(continued?.thread, await findThread(handle.db, again.replyIds[0]));
      assert.deepEqual(continued?.thread.map((m) => m.id), [first.parentId, first.replyIds[0], next.parentId, again.replyIds[0]]);
      assert.deepEqual(await conversationThread(handle.db, (await createConversation(handle.db, { sessionId })).id), { sessionId, thread: [] });
      assert.equal(await conversationThread(handle.db, 987654321), undefined);
    });

    it('a conversation that is gone is not_found, a parent in another conversation is refused, and nothing is half-written', async () => {
      const other = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'other', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] });
      const mine = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'mine', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] });
      const count = async () => (await listConversationMessages(handle.db, mine.conversationId)).length;
      const before = await count();
      await assert.rejects(
        insertTurn(handle.db, { conversationId: 987654321, sessionId, title: '', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] }),
        (e: unknown) => e instanceof RepoError && e.code === 'not_found' && /conversation 987654321 does not exist/.test(e.message),
      );
      // The user row would go in, then its reply row... the foreign key refuses the statement as a whole.
      await assert.rejects(insertTurn(handle.db, { conversationId: mine.conversationId, sessionId, title: '', parentId: other.parentId, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] }), /foreign key/);
      assert.equal(await count(), before);
      await assert.rejects(insertTurn(handle.db, { conversationId: null, sessionId, title: '', parentId: null, turns: [], replies: [] }), /at least one reply/);
    });

    it('insertTurns writes several turns in one statement, each with the rows insertTurn writes for it', async () => {
      const base = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'base', parentId: null, turns: [{ role: 'user', content: 'one' }], replies: [{ decoding: {} }] });
      const before = (await getConversation(handle.db, base.conversationId))!.updated_at;
      await new Promise((r) => setTimeout(r, 5));
      const history = [
        { role: 'system' as const, content: 'be brief' },
        { role: 'user' as const, content: 'hi' },
        { role: 'assistant' as const, content: 'hello' },
        { role: 'user' as const, content: 'how are you?' },
      ];
      const queriesBefore = handle.stats?.().queries;
      const [fresh, next, regenerated, root] = await insertTurns(handle.db, [
        { conversationId: null, sessionId, title: 'fresh', parentId: null, turns: history, replies: [{ decoding: { strategy: 'greedy' } }, { decoding: { strategy: 'sample' } }] },
        { conversationId: base.conversationId, sessionId, title: 'ignored', parentId: base.replyIds[0], turns: [{ role: 'user', content: 'two' }], replies: [{ decoding: { strategy: 'beam_search' } }] },
        { conversationId: base.conversationId, sessionId, title: '', parentId: base.parentId, turns: [], replies: [{ decoding: { strategy: 'greedy', seed: 3 } }] },
        { conversationId: null, sessionId, title: 'root', parentId: null, turns: [], replies: [{ decoding: {} }] },
      ]);
      if (queriesBefore !== undefined) assert.equal(handle.stats!().queries - queriesBefore, 1);

      const freshRows = await listConversationMessages(handle.db, fresh.conversationId);
      assert.equal((await getConversation(handle.db, fresh.conversationId))?.title, 'fresh');
      assert.deepEqual(freshRows.slice(0, 4).map((m) => [m.role, m.content, m.origin, m.decoding, m.finish_reason]), history.map((x) => [x.role, x.content, 'client', null, null]));
      assert.deepEqual(freshRows.map((m) => m.parent_id), [null, freshRows[0].id, freshRows[1].id, freshRows[2].id, freshRows[3].id, freshRows[3].id]);
      assert.equal(fresh.parentId, freshRows[3].id);
      assert.deepEqual(fresh.replyIds, [freshRows[4].id, freshRows[5].id]);
      assert.deepEqual(freshRows.slice(4).map((m) => [m.role, m.origin, m.content, m.decoding]), [['assistant', 'generated', '', { strategy: 'greedy' }], ['assistant', 'generated', '', { strategy: 'sample' }]]);

      const baseRows = await listConversationMessages(handle.db, base.conversationId);
      assert.deepEqual([next.conversationId, regenerated.conversationId], [base.conversationId, base.conversationId]);
      const two = baseRows.find((m) => m.id === next.parentId);
      assert.deepEqual([two?.content, two?.parent_id, two?.origin], ['two', base.replyIds[0], 'client']);
      assert.deepEqual(baseRows.find((m) => m.id === next.replyIds[0])?.parent_id, next.parentId);
      assert.equal(regenerated.parentId, base.parentId);
      assert.deepEqual(baseRows.find((m) => m.id === regenerated.replyIds[0])?.decoding, { strategy: 'greedy', seed: 3 });
      const bumped = (await getConversation(handle.db, base.conversationId))!;
      assert.equal(bumped.title, 'base');
      assert.ok(bumped.updated_at > before, `updated_at ${bumped.updated_at.toISOString()} after ${before.toISOString()}`);

      assert.equal(root.parentId, null);
      assert.deepEqual((await listConversationMessages(handle.db, root.conversationId)).map((m) => [m.id, m.parent_id, m.role]), [[root.replyIds[0], null, 'assistant']]);
      // Later single inserts draw their ids from the same sequences.
      const after = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'after', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] });
      assert.ok(after.conversationId > root.conversationId && after.replyIds[0] > Math.max(...fresh.replyIds, root.replyIds[0]));
      assert.deepEqual(await insertTurns(handle.db, []), []);
    });

    it('insertTurns: one bad turn (a conversation that is gone, a parent of another conversation) fails the statement and writes nothing', async () => {
      const other = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'other', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] });
      const mine = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'mine', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: {} }] });
      const good = { conversationId: mine.conversationId, sessionId, title: '', parentId: mine.replyIds[0], turns: [{ role: 'user' as const, content: 'fine' }], replies: [{ decoding: {} }] };
      const count = async () => (await listConversationMessages(handle.db, mine.conversationId)).length;
      const before = await count();
      await assert.rejects(insertTurns(handle.db, [good, { ...good, conversationId: 987654321, parentId: null }]), /foreign key/);
      await assert.rejects(insertTurns(handle.db, [good, { ...good, parentId: other.parentId }]), /foreign key/);
      assert.equal(await count(), before);
      await assert.rejects(insertTurns(handle.db, [good, { ...good, replies: [] }]), /at least one reply/);
    });

    it('finishMessages stores every reply its own end in one statement, keeps omitted fields, and skips ids that do not exist', async () => {
      const t = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'ends', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: [{ decoding: { strategy: 'sample' } }, { decoding: { strategy: 'greedy' } }, { decoding: { strategy: 'beam_search' } }] });
      const version = await insertModelVersion(handle.db, { kind: 'policy', checkpointPath: '/tmp/ends-policy', sha256: 'a'.repeat(64) });
      const [a, b, c] = t.replyIds;
      const done = await finishMessages(handle.db, [
        { id: a, content: 'first', finishReason: 'stop', timings: { ttft_ms: 3, total_ms: 30 }, modelVersionId: version.id, promptTokens: 5, completionTokens: 2, decoding: { strategy: 'sample', seed: 7 } },
        { id: b, content: 'second', finishReason: 'length', timings: { ttft_ms: 4, total_ms: 40 }, promptTokens: 6, completionTokens: 9 },
        { id: 987654321, content: 'nobody', finishReason: 'stop', timings: { ttft_ms: 0, total_ms: 0 } },
        { id: c, content: '', finishReason: 'error', timings: { ttft_ms: 0, total_ms: 1 } },
      ]);
      assert.deepEqual(new Set(done), new Set([a, b, c]));
      const [ra, rb, rc] = await Promise.all([a, b, c].map((id) => getMessage(handle.db, id)));
      assert.deepEqual(
        [ra, rb, rc].map((m) => [m?.content, m?.finish_reason, m?.timings, m?.model_version_id === null ? null : Number(m?.model_version_id), m?.prompt_tokens, m?.completion_tokens, m?.decoding]),
        [
          ['first', 'stop', { ttft_ms: 3, total_ms: 30 }, Number(version.id), 5, 2, { strategy: 'sample', seed: 7 }],
          ['second', 'length', { ttft_ms: 4, total_ms: 40 }, null, 6, 9, { strategy: 'greedy' }],
          ['', 'error', { ttft_ms: 0, total_ms: 1 }, null, null, null, { strategy: 'beam_search' }],
        ],
      );
      assert.deepEqual(await finishMessages(handle.db, []), []);
    });
  });
}
