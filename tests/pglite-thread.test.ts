// The embedded database runs in its own thread (db/pglite-thread.mjs): values, errors and
// transactions must come through the message port as they would from PGlite in-process.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, openMemoryDatabase, sqlState, violatedConstraint, type DatabaseHandle } from '../db/index.ts';
import { EmbeddedDatabaseError, PGliteRemote } from '../db/pglite-remote.ts';

describe('the embedded database thread', () => {
  let handle: DatabaseHandle;
  before(async () => {
    handle = await openMemoryDatabase();
    await sql`create table t (id int8 primary key, at timestamptz not null, doc jsonb, bytes bytea, constraint t_id_positive check (id > 0))`.execute(handle.db);
  });
  after(() => handle?.close());

  it('returns int8 as numbers, timestamps as Dates, jsonb as objects and bytea as bytes', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    await sql`insert into t values (${9007199254740991}, ${at}, ${JSON.stringify({ a: [1, 'x'] })}, ${new Uint8Array([0, 255, 7])})`.execute(handle.db);
    const { rows } = await sql<{ id: number; at: Date; doc: unknown; bytes: Uint8Array }>`select * from t`.execute(handle.db);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].id, 9007199254740991);
    assert.ok(rows[0].at instanceof Date);
    assert.equal(rows[0].at.toISOString(), at.toISOString());
    assert.deepEqual(rows[0].doc, { a: [1, 'x'] });
    assert.deepEqual([...rows[0].bytes], [0, 255, 7]);
  });

  it('an int8 beyond a safe integer is an error naming the value, and the thread keeps serving', async () => {
    await assert.rejects(sql`select 9007199254740993::int8 as n`.execute(handle.db), /int8 value 9007199254740993 exceeds Number.MAX_SAFE_INTEGER/);
    const { rows } = await sql<{ n: number }>`select 2::int8 as n`.execute(handle.db);
    assert.deepEqual(rows, [{ n: 2 }]);
  });

  it('a constraint violation keeps its SQLSTATE and constraint name', async () => {
    const err = await sql`insert into t values (-1, now(), null, null)`.execute(handle.db).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof EmbeddedDatabaseError);
    assert.equal(sqlState(err), '23514');
    assert.equal(violatedConstraint(err), 't_id_positive');
    const dup = await sql`insert into t values (9007199254740991, now(), null, null)`.execute(handle.db).then(() => null, (e: unknown) => e);
    assert.equal(sqlState(dup), '23505');
  });

  it('a failed transaction rolls back, and statements from outside wait for a transaction to end', async () => {
    await assert.rejects(
      handle.db.transaction().execute(async (tx) => {
        await sql`insert into t values (1, now(), null, null)`.execute(tx);
        throw new Error('stop here');
      }),
      /stop here/,
    );
    const order: string[] = [];
    await handle.db.transaction().execute(async (tx) => {
      await sql`insert into t values (2, now(), null, null)`.execute(tx);
      // Issued while the transaction holds the connection: runs after it commits, and sees its row.
      const outside = sql<{ ids: number[] }>`select array_agg(id order by id) as ids from t where id < 100`.execute(handle.db).then((r) => order.push(`outside ${JSON.stringify(r.rows[0].ids)}`));
      await new Promise((r) => setTimeout(r, 20));
      await sql`insert into t values (3, now(), null, null)`.execute(tx);
      order.push('commit');
      void outside;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(order, ['commit', 'outside [2,3]']);
  });

  it('queries from many callers run side by side while concurrent transactions never interleave', async () => {
    await sql`create table q (id serial primary key, txn int not null)`.execute(handle.db);
    const reads: Promise<unknown>[] = [];
    await Promise.all(
      Array.from({ length: 12 }, (_, k) =>
        handle.db.transaction().execute(async (tx) => {
          await sql`insert into q (txn) values (${k})`.execute(tx);
          reads.push(sql`select count(*) from q`.execute(handle.db));
          await new Promise((r) => setTimeout(r, (k * 7) % 5));
          await sql`insert into q (txn) values (${k})`.execute(tx);
        }),
      ),
    );
    await Promise.all(reads);
    const { rows } = await sql<{ txn: number }>`select txn from q order by id`.execute(handle.db);
    assert.equal(rows.length, 24);
    // Each transaction's two rows are next to each other: nothing ran between its statements.
    for (let i = 0; i < rows.length; i += 2) assert.equal(rows[i].txn, rows[i + 1].txn, `rows ${i} and ${i + 1}: ${JSON.stringify(rows)}`);
  });

  it('a COMMIT that fails ends the transaction, and the database keeps serving', async () => {
    await sql`create table d (id int, constraint d_once unique (id) deferrable initially deferred)`.execute(handle.db);
    await assert.rejects(
      handle.db.transaction().execute(async (tx) => {
        await sql`insert into d values (1), (1)`.execute(tx);
      }),
      (err: unknown) => sqlState(err) === '23505',
    );
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from d`.execute(handle.db);
    assert.deepEqual(rows, [{ n: 0 }]);
  });

  it('counts the queries it answers and its thread\'s busy time', async () => {
    const before = handle.stats!();
    // A statement that keeps the thread busy for a measurable time.
    await sql`select count(*) from generate_series(1, 200000)`.execute(handle.db);
    await sql`select 1`.execute(handle.db);
    const after = handle.stats!();
    assert.equal(after.queries - before.queries, 2);
    assert.ok(after.busyMs > before.busyMs, `busy time ${before.busyMs} -> ${after.busyMs} ms`);
  });

  it('after close, a query fails with an error that says the database is closed', async () => {
    const remote = await PGliteRemote.open();
    assert.deepEqual((await remote.query<{ x: number }>('select 1 as x')).rows, [{ x: 1 }]);
    await remote.close();
    await remote.close();
    assert.equal(remote.closed, true);
    await assert.rejects(remote.query('select 1'), /the embedded database is closed/);
  });
});

describe('the embedded database on disk, through its thread', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pglite-thread-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('what one open wrote, the next open reads', async () => {
    const first = await openDatabase({ stateDir: dir });
    await sql`create table kept (v text)`.execute(first.db);
    await sql`insert into kept values ('written')`.execute(first.db);
    await first.close();
    const second = await openDatabase({ stateDir: dir });
    try {
      const { rows } = await sql<{ v: string }>`select v from kept`.execute(second.db);
      assert.deepEqual(rows, [{ v: 'written' }]);
    } finally {
      await second.close();
    }
  });
});
