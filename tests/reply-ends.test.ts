// Reply ends are written by group commit (server/chat/store.ts): ends that arrive while another is
// being written go out together as one statement, and a group that fails is written one end at a
// time so that a bad row fails alone. On PGlite and (with DATABASE_URL) PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getMessage, insertTurn, type DatabaseHandle, type FinishReason } from '../db/index.ts';
import { finishReply } from '../server/chat/store.ts';
import { databaseTargets, openWithSession } from './helpers/scratch-database.ts';

const targets = databaseTargets('test_reply_ends');

for (const target of targets) {
  describe(`reply ends on ${target.name}`, () => {
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
  });
}
