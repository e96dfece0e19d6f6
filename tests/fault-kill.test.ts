// Fault test: the server process is SIGKILLed while it streams replies, then started again on the
// same state (embedded PGlite in STATE_DIR; or a PostgreSQL database when DATABASE_URL is set).
// Finished replies, ratings and sessions survive intact; a reply cut by the kill is not left looking
// like one still being generated (null finish reason) but is marked `interrupted`; and the server
// comes back serving the same active model version.
//
// With PostgreSQL the start-up sweep only marks replies older than STALE_REPLY_MS (another replica
// may be generating the younger ones): the test ages the cut replies in the database before the
// restart, and checks that a young unfinished reply is left alone.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import { STALE_REPLY_MS, sweepInterruptedReplies } from '../server/chat/interrupted.ts';
import { createConversation, createSession, getMessage, insertMessage, migrateToLatest } from '../db/index.ts';
import { createLogger } from '../trainer/online/process-setup.ts';
import type { ConversationDetail, DoneFrame, ModelVersionInfo, StartFrame, WireMessage } from '../server/protocol.ts';
import { freePort, startChildServer, type ChildServer } from './helpers/child-server.ts';
import { openScratchDatabase } from './helpers/scratch-database.ts';
import { ADMIN_TOKEN, databaseTargets, newSession, TestSocket, tinyCheckpoint } from './helpers/server-harness.ts';

interface KillTarget {
  name: string;
  /** Extra environment for the server and, for PostgreSQL, SQL access to its database. */
  open(): Promise<{ env: Record<string, string>; query?: (text: string, values?: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>; close(): Promise<void> }>;
}

function killTargets(): KillTarget[] {
  const targets: KillTarget[] = [{ name: 'PGlite', open: async () => ({ env: {}, close: async () => {} }) }];
  const serverUrl = process.env.DATABASE_URL;
  if (serverUrl) {
    targets.push({
      name: 'PostgreSQL',
      open: async () => {
        const handle = await openScratchDatabase(serverUrl, 'test_kill');
        return {
          env: { DATABASE_URL: handle.connectionString! },
          query: (text, values = []) => handle.db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, values)),
          close: () => handle.close(),
        };
      },
    });
  }
  return targets;
}

for (const target of databaseTargets()) {
  describe(`start-up sweep of unfinished replies (${target.name})`, () => {
    test('embedded: every unfinished reply is interrupted; shared: only those older than STALE_REPLY_MS', async () => {
      const handle = await target.open();
      try {
        await migrateToLatest(handle.db);
        const { session } = await createSession(handle.db);
        const conversation = await createConversation(handle.db, { sessionId: session.id, title: 'sweep' });
        const user = await insertMessage(handle.db, { conversationId: conversation.id, role: 'user', content: 'hi' });
        const reply = (finishReason: 'stop' | null) => insertMessage(handle.db, { conversationId: conversation.id, parentId: user.id, role: 'assistant', origin: 'generated', content: finishReason ? 'done' : '', finishReason });
        const [finished, old, young] = [await reply('stop'), await reply(null), await reply(null)];
        // An "assistant" turn of a client's /v1 history: context with no end to store, never swept.
        const history = await insertMessage(handle.db, { conversationId: conversation.id, parentId: user.id, role: 'assistant', content: 'FABRICATED' });
        await sql`update messages set created_at = now() - ${STALE_REPLY_MS + 60_000} * interval '1 millisecond' where id in (${old.id}, ${history.id})`.execute(handle.db);
        const quiet = createLogger('silent');
        // As a server sharing PostgreSQL with other replicas would: the young one may be someone's.
        assert.deepEqual(await sweepInterruptedReplies({ db: handle.db, kind: 'postgres' }, quiet), [old.id]);
        assert.equal((await getMessage(handle.db, young.id))?.finish_reason, null);
        // As the only process of an embedded database: nothing can be generating at start-up.
        assert.deepEqual(await sweepInterruptedReplies({ db: handle.db, kind: 'pglite' }, quiet), [young.id]);
        const rows = await Promise.all([finished, old, young].map((m) => getMessage(handle.db, m.id)));
        assert.deepEqual(rows.map((m) => [m?.finish_reason, m?.content]), [['stop', 'done'], ['interrupted', ''], ['interrupted', '']]);
        assert.deepEqual(await sweepInterruptedReplies({ db: handle.db, kind: 'pglite' }, quiet), [], 'nothing left to mark');
        const kept = await getMessage(handle.db, history.id);
        assert.deepEqual([kept?.origin, kept?.finish_reason, kept?.content], ['client', null, 'FABRICATED']);
      } finally {
        await handle.close();
      }
    });
  });
}

for (const target of killTargets()) {
  describe(`fault: server killed mid-stream and restarted (${target.name})`, () => {
    const children: ChildServer[] = [];
    const cleanups: (() => Promise<unknown>)[] = [];
    after(async () => {
      for (const c of children) await c.kill();
      for (const fn of cleanups.reverse()) await fn();
    });

    test('finished replies intact, the cut ones marked interrupted, the same model version serving', async () => {
      const stateDir = await mkdtemp(join(tmpdir(), 'fault-kill-'));
      cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
      const db = await target.open();
      cleanups.push(() => db.close());
      const port = await freePort();
      const env = { STATE_DIR: stateDir, CHECKPOINT: await tinyCheckpoint(), ADMIN_TOKEN, ...db.env };

      // --- First life: finished replies, a rating, then two long replies cut by SIGKILL.
      const first = await startChildServer(port, env);
      children.push(first);
      const token = await newSession(first.url);
      const ws = await TestSocket.open(first.wsUrl, { token });
      const a = await ws.request({ type: 'chat', id: 'a', content: 'The game was', decoding: { max_new_tokens: 12 } });
      const b = await ws.request({ type: 'regenerate', id: 'b', message_id: a.done!.message_id, decoding: { strategy: 'beam_search', beam_width: 3, max_new_tokens: 12 } });
      assert.ok(a.done && b.done, JSON.stringify([a.error, b.error]));
      const rated = await fetch(`${first.url}/api/messages/${a.done.message_id}/rating`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ value: 1, reason: 'kept' }),
      });
      assert.equal(rated.status, 200);
      const version = a.done.model_version;

      const long = [
        { id: 'cut-greedy', decoding: { max_new_tokens: 256, repetition_penalty: 1.3 } },
        { id: 'cut-beam', decoding: { strategy: 'beam_search' as const, beam_width: 4, max_new_tokens: 256, repetition_penalty: 1.3 } },
      ];
      for (const l of long) ws.send({ type: 'chat', id: l.id, conversation_id: a.start!.conversation_id, content: 'Tell me a long story about the city', decoding: l.decoding });
      for (const l of long) await ws.waitFor((f) => 'id' in f && f.id === l.id && (f.type === 'delta' || f.type === 'done' || f.type === 'error'));
      await first.kill();
      await ws.closed;
      const cut = long.map((l) => ({
        start: ws.frames.find((f): f is StartFrame => f.type === 'start' && f.id === l.id)!,
        done: ws.frames.find((f): f is DoneFrame => f.type === 'done' && f.id === l.id),
      }));
      for (const c of cut) assert.ok(c.start, 'both long replies had started');
      assert.ok(cut.some((c) => !c.done), 'at least one reply was still streaming when the server died');

      // With PostgreSQL: age the cut replies past the sweep's threshold; add a young unfinished reply,
      // as another replica's reply in progress would be.
      let young: number | undefined;
      if (db.query) {
        const ids = cut.filter((c) => !c.done).map((c) => c.start.message_id);
        await db.query(`update messages set created_at = created_at - ($1::bigint * interval '1 millisecond') where id = any($2::bigint[])`, [STALE_REPLY_MS + 60_000, ids]);
        const row = await db.query(`insert into messages (conversation_id, parent_id, role, origin, decoding) values ($1, $2, 'assistant', 'generated', '{}'::jsonb) returning id`, [a.start!.conversation_id, cut[0].start.parent_id]);
        young = Number(row.rows[0].id);
      }

      // --- Second life on the same state.
      const second = await startChildServer(port, env);
      children.push(second);
      const detail = (await (await fetch(`${second.url}/api/conversations/${a.start!.conversation_id}`, { headers: { Authorization: `Bearer ${token}` } })).json()) as ConversationDetail;
      const byId = new Map<number, WireMessage>(detail.messages.map((m) => [m.id, m]));
      for (const ex of [a, b]) {
        const m = byId.get(ex.done!.message_id);
        assert.ok(m, `finished reply ${ex.done!.message_id} survived`);
        assert.deepEqual(
          [m.content, m.finish_reason, m.model_version, m.usage?.completion_tokens, m.parent_id],
          [ex.done!.text, ex.done!.finish_reason, version, ex.done!.usage.completion_tokens, a.start!.parent_id],
        );
      }
      assert.equal(byId.get(a.done.message_id)?.rating, 1, 'the rating survived');
      assert.equal(byId.get(a.start!.parent_id!)?.content, 'The game was');
      let interrupted = 0;
      for (const c of cut) {
        const m = byId.get(c.start.message_id);
        assert.ok(m, `cut reply ${c.start.message_id} is listed`);
        if (c.done) {
          assert.deepEqual([m.content, m.finish_reason], [c.done.text, c.done.finish_reason]);
        } else if (m.finish_reason === 'interrupted') {
          interrupted += 1;
          assert.equal(m.content, '', 'no half-written text');
          assert.equal(m.usage, null);
        } else {
          // Stored its end just before the kill, without the done frame getting out: a whole reply.
          assert.ok(m.finish_reason === 'stop' || m.finish_reason === 'length', JSON.stringify(m));
          assert.ok(m.usage && m.usage.completion_tokens > 0, JSON.stringify(m));
        }
      }
      assert.ok(interrupted > 0, `a reply was marked interrupted: ${JSON.stringify(detail.messages.map((m) => [m.id, m.finish_reason]))}`);
      assert.ok(detail.messages.every((m) => m.role !== 'assistant' || m.finish_reason !== null || m.id === young), 'no reply left unfinished');
      if (young !== undefined) {
        assert.equal(byId.get(young)?.finish_reason, null, 'a young unfinished reply may be another replica\'s: left alone');
      }

      // The same version serves, and chatting works.
      const health = (await (await fetch(`${second.url}/health`)).json()) as { ready: boolean; model: { version: number } };
      assert.deepEqual([health.ready, health.model.version], [true, version]);
      const models = (await (await fetch(`${second.url}/api/models`)).json()) as { serving: number; versions: ModelVersionInfo[] };
      assert.equal(models.serving, version);
      assert.deepEqual(models.versions.filter((v) => v.status === 'active').map((v) => v.id), [version]);
      const again = await TestSocket.open(second.wsUrl, { token });
      try {
        const reply = await again.request({ type: 'chat', id: 'again', conversation_id: a.start!.conversation_id, content: 'And then?', decoding: { max_new_tokens: 8 } });
        assert.ok(reply.done, JSON.stringify(reply.error));
        assert.equal(reply.done.model_version, version);
      } finally {
        again.close();
      }
      assert.equal(await second.stop(), 0, `graceful exit:\n${second.output().slice(-2000)}`);
    });
  });
}
