// A reply's rows are written by group commit (server/chat/group-commit.ts, used by server/chat/store.ts):
// the new turns when generation starts and the ends when it stops. Writes that arrive while another
// is in flight go out together as one statement, and a group that fails is written one at a time so
// that a bad row fails alone. On PGlite and (with DATABASE_URL) PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getConversation, getMessage, insertTurn, listConversationMessages, RepoError, type DatabaseHandle, type FinishReason } from '../db/index.ts';
import { finishReply, storeTurn } from '../server/chat/store.ts';
import type { ReplyTarget } from '../server/chat/targets.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import { databaseTargets, openWithSession } from './helpers/scratch-database.ts';

const targets = databaseTargets('test_reply_storage');

for (const target of targets) {
  describe(`reply rows on ${target.name}`, () => {
    let handle: DatabaseHandle;
    let sessionId: number;
    before(async () => {
      ({ handle, sessionId } = await openWithSession(target));
    });
    after(() => handle?.close());

    /** n empty reply rows, as a batch of chats leaves them when generation starts. */
    async function replyRows(n: number): Promise<number[]> {
      const t = await insertTurn(handle.db, { conversationId: null, sessionId, title: 'q', parentId: null, turns: [{ role: 'user', content: 'q' }], replies: Array.from({ length: n }, () => ({ decoding: { strategy: 'greedy' } })) });
      return t.replyIds;
    }

    const end = (i: number, finishReason: FinishReason = 'stop') => ({ text: `reply ${i}`, finishReason, promptTokens: 4, completionTokens: i, timings: { ttft_ms: i, total_ms: 10 * i } });

    it('eight ends at once: every row gets its own, in two statements (the first alone, the other seven together)', async () => {
      const ids = await replyRows(8);
      const queriesBefore = handle.stats?.().queries;
      await Promise.all(ids.map((id, i) => finishReply(handle.db, id, end(i))));
      if (queriesBefore !== undefined) assert.equal(handle.stats!().queries - queriesBefore, 2);
      const rows = await Promise.all(ids.map((id) => getMessage(handle.db, id)));
      assert.deepEqual(
        rows.map((m) => [m?.content, m?.finish_reason, m?.completion_tokens, m?.timings]),
        ids.map((_, i) => [`reply ${i}`, 'stop', i, { ttft_ms: i, total_ms: 10 * i }]),
      );
    });

    it('a bad end in a group fails alone: the others of its group are stored', async () => {
      const ids = await replyRows(5);
      // The first end is written alone; the other four wait and go as one group, which the bad one fails.
      const results = await Promise.allSettled(ids.map((id, i) => finishReply(handle.db, id, i === 2 ? end(i, 'exploded' as FinishReason) : end(i))));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      assert.match(String((results[2] as PromiseRejectedResult).reason), /finish_reason_check/);
      const rows = await Promise.all(ids.map((id) => getMessage(handle.db, id)));
      assert.deepEqual(rows.map((m) => [m?.content, m?.finish_reason]), [['reply 0', 'stop'], ['reply 1', 'stop'], ['', null], ['reply 3', 'stop'], ['reply 4', 'stop']]);
    });

    const chat = (text: string): ReplyTarget => ({ conversationId: null, parentId: null, context: [], newTurns: [{ role: 'user', content: text }] });

    it('eight turns at once: each its own conversation and rows, in two statements (the first alone, the other seven together)', async () => {
      const queriesBefore = handle.stats?.().queries;
      const stored = await Promise.all(Array.from({ length: 8 }, (_, i) => storeTurn(handle.db, sessionId, chat(`question ${i}`), [{ decoding: parseDecodeOptions({ strategy: 'greedy', max_new_tokens: i + 1 }) }])));
      if (queriesBefore !== undefined) assert.equal(handle.stats!().queries - queriesBefore, 2);
      assert.equal(new Set(stored.map((s) => s.conversationId)).size, 8);
      for (const [i, s] of stored.entries()) {
        assert.equal((await getConversation(handle.db, s.conversationId))?.title, `question ${i}`);
        const rows = await listConversationMessages(handle.db, s.conversationId);
        assert.deepEqual(
          rows.map((m) => [m.id, m.parent_id, m.role, m.origin, m.content, m.decoding]),
          [
            [s.parentId, null, 'user', 'client', `question ${i}`, null],
            [s.replyIds[0], s.parentId, 'assistant', 'generated', '', parseDecodeOptions({ strategy: 'greedy', max_new_tokens: i + 1 })],
          ],
        );
      }
    });

    it('a bad turn in a group fails alone, with the error it has when written by itself', async () => {
      const decoding = parseDecodeOptions();
      const base = await storeTurn(handle.db, sessionId, chat('base'), [{ decoding }]);
      const gone: ReplyTarget = { conversationId: 987654321, parentId: null, context: [], newTurns: [{ role: 'user', content: 'lost' }] };
      const next: ReplyTarget = { conversationId: base.conversationId, parentId: base.replyIds[0], context: [], newTurns: [{ role: 'user', content: 'next' }] };
      // The first is written alone; the other three wait and go as one group, which the bad one fails.
      const results = await Promise.allSettled([chat('a'), chat('b'), gone, next].map((t) => storeTurn(handle.db, sessionId, t, [{ decoding }])));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      const reason = (results[2] as PromiseRejectedResult).reason;
      assert.ok(reason instanceof RepoError && reason.code === 'not_found', String(reason));
      const stored = (results[3] as PromiseFulfilledResult<Awaited<ReturnType<typeof storeTurn>>>).value;
      assert.equal(stored.conversationId, base.conversationId);
      assert.equal((await getMessage(handle.db, stored.parentId!))?.parent_id, base.replyIds[0]);
    });
  });
}
