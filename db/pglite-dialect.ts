// kysely's dialect for PGlite, the embedded PostgreSQL: PostgreSQL's SQL, adapter and introspection
// over one PGlite instance in its own thread (pglite-remote.ts). PGlite is a single session, but the
// thread queues queries and keeps transactions whole (pglite-thread.mjs), so every kysely connection
// here is a light handle on it: queries from different requests are sent without waiting for each
// other, and a transaction is BEGIN ... COMMIT whose statements carry the transaction's id.
import type { PGliteRemote } from './pglite-remote.ts';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';

let nextTransactionId = 1;

class PGliteConnection implements DatabaseConnection {
  /** The transaction open on this handle, if any. */
  private txn: number | null = null;

  constructor(private readonly pglite: PGliteRemote) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.send<R>(query);
  }

  async begin(): Promise<void> {
    if (this.txn !== null) throw new Error('a transaction is already open on this connection');
    this.txn = nextTransactionId++;
    await this.send(CompiledQuery.raw('begin'));
  }

  /**
   * COMMIT or ROLLBACK: the transaction ends (and the thread runs other work again) even if it fails.
   * A ROLLBACK after a failed COMMIT (kysely sends one) has nothing left to end.
   */
  async end(statement: 'commit' | 'rollback'): Promise<void> {
    const id = this.txn;
    if (id === null && statement === 'rollback') return;
    if (id === null) throw new Error('commit without an open transaction');
    this.txn = null;
    await this.pglite.query(statement, [], { id, end: true });
  }

  private async send<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const txn = this.txn === null ? undefined : { id: this.txn };
    const { affectedRows, rows } = await this.pglite.query<R>(query.sql, [...query.parameters], txn);
    return { numAffectedRows: affectedRows != null ? BigInt(affectedRows) : undefined, rows };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite does not stream query results');
  }
}

class PGliteDriver implements Driver {
  constructor(private readonly pglite: PGliteRemote) {}
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return new PGliteConnection(this.pglite);
  }
  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).begin();
  }
  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).end('commit');
  }
  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).end('rollback');
  }
  async releaseConnection(): Promise<void> {}
  async destroy(): Promise<void> {
    await this.pglite.close();
  }
}

export class PGliteDialect implements Dialect {
  constructor(private readonly config: { pglite: PGliteRemote }) {}
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PGliteDriver(this.config.pglite);
  }
  createIntrospector(db: Kysely<any>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}
