// The feedback store against embedded PGlite (always) and a real PostgreSQL (when DATABASE_URL is set:
// a scratch database is created on that server for the run and dropped afterwards).
//   node --import tsx --test tests/db.test.ts
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import tsx --test tests/db.test.ts
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import {
  activateModelVersion,
  claimNextTrainingRun,
  countNewFeedback,
  createConversation,
  createSession,
  createTrainingRun,
  deleteConversation,
  exportPairs,
  failInterruptedTrainingRuns,
  findSessionByToken,
  findThread,
  finishTrainingRun,
  getActiveModelVersion,
  getMessage,
  getMessageOwner,
  getPair,
  getRating,
  getTrainingRun,
  hashToken,
  importPairs,
  insertMessage,
  insertModelVersion,
  listChildren,
  listConversationMessages,
  listConversationRatings,
  listConversations,
  listPairsForMessage,
  listSiblings,
  listSingleRatings,
  markPairsUsed,
  MigrationError,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  openDatabase,
  recordComparison,
  recordRating,
  rejectModelVersion,
  RepoError,
  sqlState,
  updateMessage,
  updateTrainingRunMetrics,
  violatedConstraint,
  type DatabaseHandle,
  type Db,
  type Message,
} from '../db/index.ts';
import { databaseTargets } from './helpers/scratch-database.ts';

const SHA = 'ab'.repeat(32);

const targets = databaseTargets();


/** Asserts that `promise` fails with the given SQLSTATE (and constraint name, when given). */
async function refused(promise: Promise<unknown>, state: string, constraint?: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.equal(sqlState(error), state, `expected SQLSTATE ${state}, got: ${String(error)}`);
    if (constraint) assert.equal(violatedConstraint(error), constraint);
    return true;
  });
}

async function refusedByRule(promise: Promise<unknown>, code: RepoError['code']): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RepoError, `expected a RepoError, got: ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** A session, a conversation and a user prompt with three regenerated replies. */
async function promptWithReplies(db: Db, sessionId?: number) {
  const session = sessionId ?? (await createSession(db)).session.id;
  const conversation = await createConversation(db, { sessionId: session, title: 'test' });
  const prompt = await insertMessage(db, { conversationId: conversation.id, role: 'user', content: 'Hello?' });
  const reply = (content: string) =>
    insertMessage(db, { conversationId: conversation.id, parentId: prompt.id, role: 'assistant', origin: 'generated', content });
  const [a, b, c] = [await reply('A'), await reply('B'), await reply('C')];
  return { sessionId: session, conversation, prompt, a, b, c };
}

/** The pairs involving a message as [chosen, rejected, source], sorted by chosen then rejected id. */
/** A timestamp the database set during this test: a Date between `since` and now (same clock). */
function assertRecent(value: unknown, since: Date, what: string): void {
  assert.ok(value instanceof Date, `${what} is ${String(value)}`);
  assert.ok(value >= since && value.getTime() <= Date.now() + 1000, `${what} = ${value.toISOString()}`);
}

const pairsOf = async (db: Db, messageId: number) =>
  (await listPairsForMessage(db, messageId))
    .map((p) => [p.chosen_message_id!, p.rejected_message_id!, p.source] as const)
    .sort((x, y) => x[0] - y[0] || x[1] - y[1]);

for (const target of targets) {
  describe(`feedback store on ${target.name}`, () => {
    let handle: DatabaseHandle;
    let db: Db;

    before(async () => {
      handle = await target.open();
      db = handle.db;
    });
    after(async () => {
      await handle?.close();
    });

    it('a failed migration throws an error naming it, and the whole run is rolled back', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'migrations-'));
      try {
        await writeFile(
          path.join(dir, '2000-01-01T0000-good.mjs'),
          "export async function up(db) { await db.schema.createTable('good').addColumn('id', 'integer').execute(); }\n",
        );
        await writeFile(
          path.join(dir, '2000-01-02T0000-broken.mjs'),
          'export async function up(db) { await db.selectFrom("no_such_table").selectAll().execute(); }\n',
        );
        await assert.rejects(migrateToLatest(db, { migrationsDir: dir }), (error: unknown) => {
          assert.ok(error instanceof MigrationError);
          assert.equal(error.migration, '2000-01-02T0000-broken');
          assert.match(error.message, /^migration "2000-01-02T0000-broken" failed: .*no_such_table/);
          assert.deepEqual(
            error.results.map((r) => [r.migration, r.status]),
            [
              ['2000-01-01T0000-good', 'RolledBack'],
              ['2000-01-02T0000-broken', 'Error'],
            ],
          );
          return true;
        });
        await refused(db.selectFrom('good' as never).selectAll().execute(), '42P01');
        assert.deepEqual(
          (await migrationStatus(db, { migrationsDir: dir })).map((m) => m.executedAt),
          [undefined, undefined],
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('migrations go up, down and up again', async () => {
      const up = await migrateToLatest(db);
      assert.ok(up.length >= 1);
      assert.ok(up.every((r) => r.status === 'Success' && r.direction === 'Up'));
      assert.ok((await migrationStatus(db)).every((m) => m.executedAt instanceof Date));
      await db.selectFrom('sessions').selectAll().execute();

      const down = await migrateDown(db, { all: true });
      assert.deepEqual(
        down.map((r) => r.migration),
        up.map((r) => r.migration).reverse(),
      );
      assert.ok(down.every((r) => r.status === 'Success' && r.direction === 'Down'));
      await refused(db.selectFrom('sessions').selectAll().execute(), '42P01'); // undefined_table

      assert.deepEqual(await migrateToLatest(db), up);
      assert.deepEqual(await migrateToLatest(db), []);
    });

    it('the message-origin migration marks server-written replies generated, the rest client (and un-sweeps client turns)', async () => {
      const { session } = await createSession(db);
      const conversation = await createConversation(db, { sessionId: session.id });
      assert.equal((await migrateDown(db)).at(-1)?.migration, '2026-12-04T1400-message-origin');
      const row = async (parentId: number | null, role: string, content: string, decoding: string | null, finish: string | null) =>
        (await sql<{ id: number }>`insert into messages (conversation_id, parent_id, role, content, decoding, finish_reason)
          values (${conversation.id}, ${parentId}, ${role}, ${content}, ${decoding}::jsonb, ${finish}) returning id`.execute(db)).rows[0].id;
      const user = await row(null, 'user', 'hi', null, null);
      const history = await row(user, 'assistant', 'FABRICATED', null, 'interrupted');
      const reply = await row(history, 'assistant', 'model text', '{"strategy":"greedy"}', 'stop');
      await migrateToLatest(db);
      const after = await Promise.all([user, history, reply].map((id) => getMessage(db, id)));
      assert.deepEqual(after.map((m) => [m?.origin, m?.finish_reason]), [['client', null], ['client', null], ['generated', 'stop']]);
      await refusedByRule(recordRating(db, { sessionId: session.id, messageId: history, value: 1 }), 'not_generated');
      await refusedByRule(recordComparison(db, { sessionId: session.id, promptMessageId: history, aMessageId: reply, bMessageId: history, choice: 'a' }), 'not_generated');
      // The database itself refuses a client row with a finish reason and a generated user turn.
      await refused(insertMessage(db, { conversationId: conversation.id, role: 'assistant', content: 'x', finishReason: 'stop' }), '23514', 'messages_client_finish_check');
      await refused(insertMessage(db, { conversationId: conversation.id, role: 'user', origin: 'generated', content: 'x' }), '23514', 'messages_generated_role_check');
    });

    it('sessions store the sha256 of the token, not the token', async () => {
      const { session, token } = await createSession(db);
      assert.equal(session.token_hash, hashToken(token));
      assert.notEqual(session.token_hash, token);
      assert.equal((await findSessionByToken(db, token))?.id, session.id);
      assert.equal(await findSessionByToken(db, `${token}x`), undefined);
      await refused(createSession(db, token), '23505', 'sessions_token_hash_key');
      await refused(
        db.insertInto('sessions').values({ token_hash: 'not-a-hash' }).execute(),
        '23514',
        'sessions_token_hash_check',
      );
    });

    it('foreign keys, unique and check constraints refuse bad rows', async () => {
      const { sessionId, conversation, prompt, a, b } = await promptWithReplies(db);
      const other = await promptWithReplies(db, sessionId);

      await refused(insertMessage(db, { conversationId: 1e9, role: 'user', content: 'x' }), '23503');
      // A parent from another conversation.
      await refused(
        insertMessage(db, { conversationId: conversation.id, parentId: other.prompt.id, role: 'assistant' }),
        '23503',
        'messages_parent_fkey',
      );
      await refused(
        insertMessage(db, { conversationId: conversation.id, role: 'robot' as 'user', content: 'x' }),
        '23514',
        'messages_role_check',
      );
      await refused(
        updateMessage(db, a.id, { finishReason: 'exploded' as 'stop' }),
        '23514',
        'messages_finish_reason_check',
      );
      await refused(updateMessage(db, a.id, { promptTokens: -1 }), '23514', 'messages_tokens_check');

      await refused(
        db.insertInto('ratings').values({ session_id: sessionId, message_id: a.id, value: 2 as 1 }).execute(),
        '23514',
        'ratings_value_check',
      );
      await db.insertInto('ratings').values({ session_id: sessionId, message_id: a.id, value: 1 }).execute();
      await refused(
        db.insertInto('ratings').values({ session_id: sessionId, message_id: a.id, value: -1 }).execute(),
        '23505',
        'ratings_session_message_key',
      );
      await refused(
        db.insertInto('ratings').values({ session_id: 1e9, message_id: b.id, value: 1 }).execute(),
        '23503',
      );

      const pair = (chosen: number, rejected: number, promptId = prompt.id, source: 'siblings' | 'import' = 'siblings') =>
        db
          .insertInto('preference_pairs')
          .values({ source, prompt_message_id: promptId, chosen_message_id: chosen, rejected_message_id: rejected })
          .execute();
      await refused(pair(a.id, a.id), '23514', 'preference_pairs_distinct_check');
      // Both replies must be children of the prompt message.
      await refused(pair(a.id, other.b.id), '23503', 'preference_pairs_rejected_fkey');
      await refused(pair(a.id, b.id, other.prompt.id), '23503', 'preference_pairs_chosen_fkey');
      await refused(pair(a.id, b.id, prompt.id, 'import'), '23514', 'preference_pairs_form_check');
      await refused(
        db
          .insertInto('preference_pairs')
          .values({ source: 'bootstrap', prompt_context: '"not an array"', chosen_text: 'x', rejected_text: 'y' })
          .execute(),
        '23514',
        'preference_pairs_form_check',
      );
      await pair(a.id, b.id);
      await refused(pair(a.id, b.id), '23505', 'preference_pairs_chosen_rejected_key');

      await refused(
        insertModelVersion(db, { kind: 'policy', checkpointPath: 'x', sha256: 'nope' }),
        '23514',
        'model_versions_sha256_check',
      );
      await refused(
        insertModelVersion(db, { kind: 'value' as 'policy', checkpointPath: 'x', sha256: SHA }),
        '23514',
        'model_versions_kind_check',
      );
      const version = await insertModelVersion(db, { kind: 'policy', checkpointPath: 'x', sha256: SHA });
      await updateMessage(db, a.id, { modelVersionId: version.id });
      await refused(db.deleteFrom('model_versions').where('id', '=', version.id).execute(), '23503');
      await refused(
        db.updateTable('model_versions').set({ status: 'active' }).where('id', '=', version.id).execute(),
        '23514',
        'model_versions_activated_check',
      );
      await refused(
        db.insertInto('training_runs').values({ config: '{}', status: 'running' }).execute(),
        '23514',
        'training_runs_started_check',
      );
      await refused(
        db.insertInto('training_runs').values({ config: '{}', status: 'succeeded' }).execute(),
        '23514',
        'training_runs_finished_check',
      );
    });

    it('messages form a tree: thread path from the root, siblings, children, owner', async () => {
      const { session } = await createSession(db);
      const conversation = await createConversation(db, { sessionId: session.id });
      const add = (parentId: number | null, role: Message['role'], content: string) =>
        insertMessage(db, { conversationId: conversation.id, parentId, role, origin: role === 'assistant' ? 'generated' : 'client', content });
      const system = await add(null, 'system', 'Be brief.');
      const u1 = await add(system.id, 'user', 'Hi');
      const a1 = await add(u1.id, 'assistant', 'Hello!');
      const u2 = await add(a1.id, 'user', 'How are you?');
      const a2 = await add(u2.id, 'assistant', 'Fine.');
      const a2b = await add(u2.id, 'assistant', 'Great, thanks.');
      const u3 = await add(a2b.id, 'user', 'Good.');

      assert.deepEqual(
        (await findThread(db, a2b.id)).map((m) => m.id),
        [system.id, u1.id, a1.id, u2.id, a2b.id],
      );
      assert.deepEqual(
        (await findThread(db, u3.id)).map((m) => m.content),
        ['Be brief.', 'Hi', 'Hello!', 'How are you?', 'Great, thanks.', 'Good.'],
      );
      assert.deepEqual(await findThread(db, 1e9), []);
      assert.deepEqual(
        (await listSiblings(db, a2b.id)).map((m) => m.id),
        [a2.id, a2b.id],
      );
      assert.deepEqual(
        (await listSiblings(db, system.id)).map((m) => m.id),
        [system.id],
      );
      assert.deepEqual(
        (await listChildren(db, u2.id)).map((m) => m.id),
        [a2.id, a2b.id],
      );
      assert.equal((await listConversationMessages(db, conversation.id)).length, 7);
      const owner = await getMessageOwner(db, a2.id);
      assert.equal(owner?.sessionId, session.id);
      assert.equal(owner?.message.id, a2.id);

      // A reply inserted empty and completed when its generation ends; JSONB round trip.
      const streaming = await add(u3.id, 'assistant', '');
      assert.equal(streaming.finish_reason, null);
      const done = await updateMessage(db, streaming.id, {
        content: 'Bye.',
        finishReason: 'stop',
        decoding: { strategy: 'beam_search', beam_width: 4, stop: ['\n\n'] },
        promptTokens: 12,
        completionTokens: 3,
        timings: { ttft_ms: 15.5, total_ms: 40 },
      });
      assert.equal(done?.content, 'Bye.');
      assert.deepEqual(done?.decoding, { strategy: 'beam_search', beam_width: 4, stop: ['\n\n'] });
      assert.deepEqual((await getMessage(db, streaming.id))?.timings, { ttft_ms: 15.5, total_ms: 40 });
      assert.equal(typeof done?.id, 'number');
      assert.ok(done?.created_at instanceof Date);

      // Conversations: most recently active first; deleting one deletes its messages.
      const older = await createConversation(db, { sessionId: session.id, title: 'older' });
      await new Promise((resolve) => setTimeout(resolve, 5)); // PGlite's clock has millisecond resolution
      await insertMessage(db, { conversationId: conversation.id, parentId: streaming.id, role: 'user', content: 'x' });
      const listed = await listConversations(db, session.id);
      assert.deepEqual(
        listed.map((c) => c.id),
        [conversation.id, older.id],
      );
      assert.equal(await deleteConversation(db, conversation.id), true);
      assert.equal(await deleteConversation(db, conversation.id), false);
      assert.equal(await getMessage(db, a2.id), undefined);
    });

    it('regenerate + opposite ratings create exactly one pair; re-rating flips or removes it', async () => {
      const { sessionId, prompt, a, b } = await promptWithReplies(db);
      const rate = (messageId: number, value: -1 | 0 | 1, reason?: string) =>
        recordRating(db, { sessionId, messageId, value, reason });

      const first = await rate(a.id, 1, 'clear');
      assert.deepEqual(first.pairIds, []);
      assert.equal(first.rating?.value, 1);
      assert.equal(first.rating?.reason, 'clear');

      const second = await rate(b.id, -1);
      assert.equal(second.pairIds.length, 1);
      const pair = await getPair(db, second.pairIds[0]);
      assert.equal(pair?.source, 'siblings');
      assert.equal(pair?.prompt_message_id, prompt.id);
      assert.equal(pair?.chosen_message_id, a.id);
      assert.equal(pair?.rejected_message_id, b.id);

      // Rating again with the same values keeps the pair (no duplicate).
      assert.deepEqual((await rate(b.id, -1, 'rude')).pairIds, second.pairIds);
      assert.deepEqual((await rate(a.id, 1)).pairIds, second.pairIds);
      assert.equal((await getRating(db, sessionId, a.id))?.reason, null, 'a new rating without reason clears it');
      assert.deepEqual(await pairsOf(db, a.id), [[a.id, b.id, 'siblings']]);

      // Flip: the old pair goes, the reversed one comes.
      assert.deepEqual((await rate(a.id, -1)).pairIds, []);
      assert.deepEqual(await pairsOf(db, a.id), []);
      const flipped = await rate(b.id, 1);
      assert.equal(flipped.pairIds.length, 1);
      assert.deepEqual(await pairsOf(db, a.id), [[b.id, a.id, 'siblings']]);

      // Value 0 removes the rating and the pairs it implied.
      const removed = await rate(b.id, 0);
      assert.equal(removed.rating, undefined);
      assert.deepEqual(removed.pairIds, []);
      assert.equal(await getRating(db, sessionId, b.id), undefined);
      assert.deepEqual(await pairsOf(db, a.id), []);
      assert.equal(await getPair(db, flipped.pairIds[0]), undefined);
      assert.deepEqual(
        (await listConversationRatings(db, sessionId, (await getMessage(db, a.id))!.conversation_id)).map((r) => [
          r.message_id,
          r.value,
        ]),
        [[a.id, -1]],
      );
    });

    it('one reply rated up pairs with every sibling rated down', async () => {
      const { sessionId, a, b, c } = await promptWithReplies(db);
      await recordRating(db, { sessionId, messageId: b.id, value: -1 });
      await recordRating(db, { sessionId, messageId: c.id, value: -1 });
      const { pairIds } = await recordRating(db, { sessionId, messageId: a.id, value: 1 });
      assert.equal(pairIds.length, 2);
      assert.deepEqual(await pairsOf(db, a.id), [
        [a.id, b.id, 'siblings'],
        [a.id, c.id, 'siblings'],
      ]);
      assert.deepEqual((await recordRating(db, { sessionId, messageId: c.id, value: 0 })).pairIds, []);
      assert.deepEqual(await pairsOf(db, a.id), [[a.id, b.id, 'siblings']]);
    });

    it('refuses to rate what is not an assistant reply, or a bad value', async () => {
      const { sessionId, prompt, a } = await promptWithReplies(db);
      await refusedByRule(recordRating(db, { sessionId, messageId: prompt.id, value: 1 }), 'bad_request');
      await refusedByRule(recordRating(db, { sessionId, messageId: 1e9, value: 1 }), 'not_found');
      await refusedByRule(recordRating(db, { sessionId, messageId: a.id, value: 2 as 1 }), 'bad_request');
    });

    it("a second session's ratings do not pair with the first's", async () => {
      const { sessionId: s1, a, b } = await promptWithReplies(db);
      const { session } = await createSession(db);
      const s2 = session.id;
      await recordRating(db, { sessionId: s1, messageId: a.id, value: 1 });
      assert.deepEqual((await recordRating(db, { sessionId: s2, messageId: b.id, value: -1 })).pairIds, []);
      assert.deepEqual(await pairsOf(db, a.id), []);

      // Once s2 also prefers a, the pair exists; it stays while either session still implies it.
      const { pairIds } = await recordRating(db, { sessionId: s2, messageId: a.id, value: 1 });
      assert.equal(pairIds.length, 1);
      await recordRating(db, { sessionId: s1, messageId: b.id, value: -1 });
      await recordRating(db, { sessionId: s1, messageId: a.id, value: 0 });
      assert.deepEqual(await pairsOf(db, a.id), [[a.id, b.id, 'siblings']]);
      await recordRating(db, { sessionId: s2, messageId: a.id, value: 0 });
      assert.deepEqual(await pairsOf(db, a.id), []);
    });

    it('A/B comparison: a or b records one pair, tie and both_bad record ratings only', async () => {
      const { sessionId, prompt, a, b, c } = await promptWithReplies(db);
      const compare = (choice: 'a' | 'b' | 'tie' | 'both_bad', x = a, y = b) =>
        recordComparison(db, { sessionId, promptMessageId: prompt.id, aMessageId: x.id, bMessageId: y.id, choice });

      const chooseA = await compare('a');
      assert.equal(chooseA.pairIds.length, 1);
      assert.deepEqual(chooseA.ratings, []);
      assert.deepEqual(await pairsOf(db, a.id), [[a.id, b.id, 'compare']]);
      assert.deepEqual(await compare('a'), chooseA, 'the same choice again changes nothing');

      // A new choice between the same replies replaces the earlier one.
      await compare('b');
      assert.deepEqual(await pairsOf(db, a.id), [[b.id, a.id, 'compare']]);

      const tie = await compare('tie');
      assert.deepEqual(tie.pairIds, []);
      assert.deepEqual(
        tie.ratings.map((r) => [r.message_id, r.value]),
        [
          [a.id, 1],
          [b.id, 1],
        ],
      );
      assert.deepEqual(await pairsOf(db, a.id), []);

      const bothBad = await compare('both_bad');
      assert.deepEqual(bothBad.pairIds, []);
      assert.deepEqual(
        bothBad.ratings.map((r) => r.value),
        [-1, -1],
      );
      assert.deepEqual(await pairsOf(db, b.id), []);

      // Ratings written by a comparison follow the sibling rule: c rated up pairs with a and b.
      assert.equal((await recordRating(db, { sessionId, messageId: c.id, value: 1 })).pairIds.length, 2);

      // A comparison pair survives rating changes; a siblings pair it confirms becomes a compare pair.
      const confirmed = await compare('b', c, a); // a preferred over c, against the ratings
      assert.deepEqual(await pairsOf(db, c.id), [
        [a.id, c.id, 'compare'],
        [c.id, a.id, 'siblings'],
        [c.id, b.id, 'siblings'],
      ]);
      const upgraded = await compare('a', c, b);
      assert.deepEqual(await pairsOf(db, b.id), [[c.id, b.id, 'compare']]);
      await recordRating(db, { sessionId, messageId: c.id, value: 0 });
      assert.deepEqual(await pairsOf(db, c.id), [
        [a.id, c.id, 'compare'],
        [c.id, b.id, 'compare'],
      ]);
      assert.ok(await getPair(db, confirmed.pairIds[0]));
      assert.ok(await getPair(db, upgraded.pairIds[0]));

      await refusedByRule(compare('a', a, a), 'bad_request');
      const elsewhere = await promptWithReplies(db, sessionId);
      await refusedByRule(compare('a', a, elsewhere.a), 'bad_request');
      await refusedByRule(compare('a', a, prompt), 'bad_request');
    });

    it('concurrent ratings of siblings leave exactly the pairs they imply', async () => {
      const { sessionId, a, b } = await promptWithReplies(db);
      for (let round = 0; round < 10; round++) {
        const up = round % 2 === 0 ? a : b;
        const down = round % 2 === 0 ? b : a;
        const results = await Promise.all([
          recordRating(db, { sessionId, messageId: up.id, value: 1 }),
          recordRating(db, { sessionId, messageId: down.id, value: -1 }),
        ]);
        assert.deepEqual(await pairsOf(db, a.id), [[up.id, down.id, 'siblings']]);
        // Whichever ran second saw the other's rating and reports the pair.
        assert.ok(results.some((r) => r.pairIds.length === 1));
      }
    });

    it('exports pairs with their prompt context, and single ratings without a pair', async () => {
      const { session } = await createSession(db);
      const conversation = await createConversation(db, { sessionId: session.id });
      const add = (parentId: number | null, role: Message['role'], content: string) =>
        insertMessage(db, { conversationId: conversation.id, parentId, role, origin: role === 'assistant' ? 'generated' : 'client', content });
      const u1 = await add(null, 'user', 'Name a fruit.');
      const a1 = await add(u1.id, 'assistant', 'Apple.');
      const u2 = await add(a1.id, 'user', 'Another one?');
      const good = await add(u2.id, 'assistant', 'Banana.');
      const bad = await add(u2.id, 'assistant', 'Car.');
      const since = new Date(Date.now() - 60_000);
      const earlier = await exportPairs(db);
      const lastId = earlier.at(-1)?.id ?? 0;

      const { rating: a1Rating } = await recordRating(db, { sessionId: session.id, messageId: a1.id, value: 1, reason: 'correct' });
      const { pairIds } = await recordRating(db, { sessionId: session.id, messageId: good.id, value: 1 });
      assert.deepEqual(pairIds, []);
      const [pairId] = (await recordRating(db, { sessionId: session.id, messageId: bad.id, value: -1 })).pairIds;

      const exported = await exportPairs(db, { afterId: lastId });
      assert.equal(exported.length, 1);
      const { created_at: pairCreated, ...pair } = exported[0];
      assertRecent(pairCreated, since, 'pair created_at');
      assert.deepEqual(pair, {
        id: pairId,
        source: 'siblings',
        prompt: [
          { role: 'user', content: 'Name a fruit.' },
          { role: 'assistant', content: 'Apple.' },
          { role: 'user', content: 'Another one?' },
        ],
        chosen: 'Banana.',
        rejected: 'Car.',
        prompt_message_id: u2.id,
        chosen_message_id: good.id,
        rejected_message_id: bad.id,
        trained_by: [],
      });

      const singles = await listSingleRatings(db);
      const single = singles.find((r) => r.message_id === a1.id);
      assert.ok(single, 'the rating of a1 is exported as a single rating');
      const { created_at: ratedAt, updated_at: updatedAt, ...singleRest } = single;
      assertRecent(ratedAt, since, 'rating created_at');
      assertRecent(updatedAt, since, 'rating updated_at');
      assert.deepEqual(singleRest, {
        id: a1Rating?.id,
        session_id: session.id,
        message_id: a1.id,
        value: 1,
        reason: 'correct',
        prompt: [{ role: 'user', content: 'Name a fruit.' }],
        response: 'Apple.',
      });
      assert.equal(typeof a1Rating?.id, 'number');
      assert.ok(!singles.some((r) => r.message_id === good.id || r.message_id === bad.id));

      // Imported text pairs: stored once, exported like the others.
      const imported = [
        { source: 'bootstrap' as const, prompt: [{ role: 'user' as const, content: 'Hi' }], chosen: 'Hello!', rejected: '...' },
        { source: 'import' as const, prompt: [{ role: 'user' as const, content: 'Hi' }], chosen: 'Hey.', rejected: '...' },
      ];
      const ids = await importPairs(db, imported);
      assert.equal(ids.length, 2);
      assert.deepEqual(await importPairs(db, imported), [], 'importing the same pairs again adds nothing');
      await refusedByRule(importPairs(db, [{ ...imported[0], prompt: [] }]), 'bad_request');
      await refusedByRule(importPairs(db, [{ ...imported[0], rejected: 'Hello!' }]), 'bad_request');

      const version = await insertModelVersion(db, { kind: 'reward', checkpointPath: 'rm/1', sha256: SHA });
      await markPairsUsed(db, version.id, [pairId, ids[0]]);
      await markPairsUsed(db, version.id, [pairId]);
      const all = await exportPairs(db, { afterId: lastId });
      assert.deepEqual(
        all.map((p) => [p.id, p.source, p.chosen, p.trained_by]),
        [
          [pairId, 'siblings', 'Banana.', [version.id]],
          [ids[0], 'bootstrap', 'Hello!', [version.id]],
          [ids[1], 'import', 'Hey.', []],
        ],
      );
      assert.deepEqual(all[1].prompt, [{ role: 'user', content: 'Hi' }]);
      assert.deepEqual(
        (await exportPairs(db, { afterId: lastId, limit: 1, sources: ['import'] })).map((p) => p.id),
        [ids[1]],
      );

      const fresh = await countNewFeedback(db, since);
      assert.ok(fresh.pairs >= 1 && fresh.ratings >= 3, JSON.stringify(fresh));
      assert.deepEqual(await countNewFeedback(db, new Date(Date.now() + 60_000)), { pairs: 0, ratings: 0 });
    });

    it('the database enforces one active model version per kind', async () => {
      const policy = (n: number) =>
        insertModelVersion(db, { kind: 'policy', checkpointPath: `policy/${n}`, sha256: SHA, metrics: { n } });
      const v1 = await policy(1);
      assert.equal(v1.status, 'candidate');
      assert.deepEqual(v1.metrics, { n: 1 });
      assert.deepEqual(v1.reasons, []);

      const first = await activateModelVersion(db, v1.id);
      assert.equal(first.version.status, 'active');
      assert.ok(first.version.activated_at instanceof Date);
      assert.equal(first.previous, undefined);

      const v2 = await policy(2);
      const second = await activateModelVersion(db, v2.id);
      assert.equal(second.previous?.id, v1.id);
      assert.equal(second.previous?.status, 'retired');
      assert.equal((await getActiveModelVersion(db, 'policy'))?.id, v2.id);

      // Bypassing the repository does not get around the database.
      await refused(
        db
          .updateTable('model_versions')
          .set({ status: 'active', activated_at: new Date() })
          .where('id', '=', v1.id)
          .execute(),
        '23505',
        'model_versions_one_active_per_kind',
      );
      // Another kind has its own active version.
      const rm = await insertModelVersion(db, { kind: 'reward', checkpointPath: 'rm/2', sha256: SHA });
      await activateModelVersion(db, rm.id);
      assert.equal((await getActiveModelVersion(db, 'reward'))?.id, rm.id);

      // Concurrent activations: exactly one wins, and one version is active.
      const [v3, v4] = [await policy(3), await policy(4)];
      await Promise.all([activateModelVersion(db, v3.id), activateModelVersion(db, v4.id)]);
      const active = await db
        .selectFrom('model_versions')
        .select('id')
        .where('kind', '=', 'policy')
        .where('status', '=', 'active')
        .execute();
      assert.equal(active.length, 1);
      assert.ok([v3.id, v4.id].includes(active[0].id));

      // Rejecting the active version brings back the one active before it.
      const loser = active[0].id === v3.id ? v4 : v3;
      const rejected = await rejectModelVersion(db, active[0].id, ['checkpoint failed to load']);
      assert.equal(rejected.version.status, 'rejected');
      assert.deepEqual(rejected.version.reasons, ['checkpoint failed to load']);
      assert.equal(rejected.reactivated?.id, loser.id);
      await refusedByRule(activateModelVersion(db, active[0].id), 'conflict');
      await refusedByRule(activateModelVersion(db, 1e9), 'not_found');
    });

    it('training runs: queued, claimed one at a time, finished; interrupted runs fail', async () => {
      const r1 = await createTrainingRun(db, { config: { ppo_steps: 4 } });
      const r2 = await createTrainingRun(db);
      assert.equal(r1.status, 'queued');
      assert.deepEqual(r1.config, { ppo_steps: 4 });

      const claimed = await claimNextTrainingRun(db);
      assert.equal(claimed?.id, r1.id);
      assert.equal(claimed?.status, 'running');
      assert.ok(claimed?.started_at instanceof Date);
      assert.equal(await claimNextTrainingRun(db), undefined, 'one running run at a time');
      await refused(
        db.updateTable('training_runs').set({ status: 'running', started_at: new Date() }).where('id', '=', r2.id).execute(),
        '23505',
        'training_runs_one_running',
      );

      await updateTrainingRunMetrics(db, r1.id, { reward: { accuracy: 0.7 } });
      await updateTrainingRunMetrics(db, r1.id, { ppo: { kl: 0.01 } });
      const version = await insertModelVersion(db, { kind: 'policy', checkpointPath: 'p/9', sha256: SHA });
      const done = await finishTrainingRun(db, r1.id, {
        status: 'succeeded',
        metrics: { gate: 'passed' },
        policyVersionId: version.id,
      });
      assert.equal(done?.status, 'succeeded');
      assert.ok(done?.finished_at instanceof Date);
      assert.equal(done?.policy_version_id, version.id);
      assert.deepEqual(done?.metrics, { reward: { accuracy: 0.7 }, ppo: { kl: 0.01 }, gate: 'passed' });
      assert.equal(await finishTrainingRun(db, r1.id, { status: 'failed' }), undefined, 'a finished run stays finished');

      assert.equal((await claimNextTrainingRun(db))?.id, r2.id);
      assert.deepEqual(await failInterruptedTrainingRuns(db, 'trainer restarted'), [r2.id]);
      const failed = await getTrainingRun(db, r2.id);
      assert.equal(failed?.status, 'failed');
      assert.equal(failed?.error, 'trainer restarted');
      assert.equal(await claimNextTrainingRun(db), undefined);
    });

    it('int8 ids and counts are JS numbers on this driver', async () => {
      const row = await sql<{ n: unknown; big: unknown }>`select count(*) as n, 9007199254740991::int8 as big`.execute(db);
      assert.deepEqual(row.rows[0], { n: 1, big: Number.MAX_SAFE_INTEGER });
    });
  });
}

describe('embedded database under a state directory', () => {
  it('keeps its data across close and reopen, and refuses a second opener', async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), 'state-'));
    try {
      const first = await openDatabase({ stateDir });
      assert.equal(first.kind, 'pglite');
      await migrateToLatest(first.db);
      const { token } = await createSession(first.db);
      await assert.rejects(openDatabase({ stateDir }), /in use/);
      await first.close();
      await first.close(); // idempotent

      const second = await openDatabase({ stateDir });
      try {
        assert.deepEqual(await migrateToLatest(second.db), []);
        assert.ok(await findSessionByToken(second.db, token));
      } finally {
        await second.close();
      }
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
