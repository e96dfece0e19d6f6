// kysely's dialect for PGlite, the embedded PostgreSQL: PostgreSQL's SQL, adapter and introspection
// over one PGlite instance. PGlite is a single connection: kysely takes it for one query or one whole
// transaction at a time (a mutex, as kysely's own SQLite driver does), and a transaction runs through
// PGlite's `transaction()`, which holds the instance against any other user of it until it ends.
import type { PGlite, Transaction } from '@electric-sql/pglite';
import {
  type CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';

class PGliteConnection implements DatabaseConnection {
  private transaction: Transaction | null = null;
  private commit: (() => void) | null = null;
  private rollback: ((err: Error) => void) | null = null;
  private ended: Promise<unknown> | null = null;

  constructor(private readonly pglite: PGlite) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const { affectedRows, rows } = await (this.transaction ?? this.pglite).query<R>(query.sql, [...query.parameters], { rowMode: 'object' });
    return { numAffectedRows: affectedRows != null ? BigInt(affectedRows) : undefined, rows: rows ?? [] };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite does not stream query results');
  }

  async begin(): Promise<void> {
    let begun!: () => void;
    const started = new Promise<void>((resolve) => (begun = resolve));
    const finished = new Promise<void>((resolve, reject) => {
      this.commit = resolve;
      this.rollback = reject;
    });
    this.ended = this.pglite.transaction(async (tx) => {
      this.transaction = tx;
      begun();
      await finished;
    });
    // A failure to begin surfaces here rather than as an unhandled rejection.
    await Promise.race([started, this.ended]);
  }

  async end(how: 'commit' | 'rollback'): Promise<void> {
    const ended = this.ended;
    if (how === 'commit') this.commit?.();
    else this.rollback?.(new Error('rolled back'));
    this.transaction = this.commit = this.rollback = this.ended = null;
    if (how === 'commit') await ended;
    else await ended?.catch(() => {});
  }
}

class PGliteDriver implements Driver {
  private readonly connection: PGliteConnection;
  /** Settles when the connection's current holder releases it. */
  private held: Promise<void> = Promise.resolve();
  private release: (() => void) | null = null;

  constructor(private readonly pglite: PGlite) {
    this.connection = new PGliteConnection(pglite);
  }
  async init(): Promise<void> {
    await this.pglite.waitReady;
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.held;
    let release!: () => void;
    this.held = new Promise<void>((resolve) => (release = resolve));
    await previous;
    this.release = release;
    return this.connection;
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
  async releaseConnection(): Promise<void> {
    const release = this.release;
    this.release = null;
    release?.();
  }
  async destroy(): Promise<void> {
    if (!this.pglite.closed) await this.pglite.close();
  }
}

export class PGliteDialect implements Dialect {
  constructor(private readonly config: { pglite: PGlite }) {}
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
