// Small helpers shared by the repositories: the db handle type, transactions, JSON columns, errors.
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** A database handle or an open transaction (a `Transaction<Database>` is a `Kysely<Database>`). */
export type Db = Kysely<Database>;

/**
 * Runs `fn` in a transaction, or inside the caller's transaction when `db` already is one, so that
 * repository rules compose into larger transactions.
 *
 * Inside `fn`, use only `trx`: with PGlite (one connection) a query on the outer `db` would wait for
 * the transaction that is waiting for it.
 */
export function inTransaction<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}

/** Serializes a value for a JSONB column (see schema.ts). */
/** One round trip to the database (readiness checks); throws when it does not answer. */
export async function pingDatabase(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

export function toJson(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`value cannot be stored as JSON: ${String(value)}`);
  return text;
}

/** `not_generated`: the message is not a reply the model wrote (client-sent history, or not finished). */
type RepoErrorCode = 'not_found' | 'bad_request' | 'conflict' | 'not_generated';

/**
 * A rule of the feedback store refused the request (unknown id, wrong kind of message, forbidden
 * state change). `code` lets the HTTP/WebSocket layer map it to its own error codes.
 */
export class RepoError extends Error {
  readonly code: RepoErrorCode;
  constructor(code: RepoErrorCode, message: string) {
    super(message);
    this.name = 'RepoError';
    this.code = code;
  }
}

/** SQLSTATE codes of constraint violations, as raised by both `pg` and PGlite. */
export const SqlState = {
  foreignKeyViolation: '23503',
  uniqueViolation: '23505',
  checkViolation: '23514',
  notNullViolation: '23502',
} as const;

/** The SQLSTATE of a database error, or undefined for any other value. */
export function sqlState(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** The name of the violated constraint (e.g. `ratings_value_check`), when the driver reports it. */
export function violatedConstraint(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'constraint' in error) {
    const name = (error as { constraint: unknown }).constraint;
    if (typeof name === 'string') return name;
  }
  return undefined;
}

/** Node socket errors of a database connection that could not be made or was cut. */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether `error` says the database could not be reached rather than that it refused the query: no
 * connection (refused, reset, the pool's connect timeout), the server shutting down or starting up
 * (SQLSTATE 57P01-57P03), any connection exception (class 08). Such a request can succeed later;
 * callers answer `unavailable` or retry instead of reporting a server fault.
 */
export function isConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (error instanceof AggregateError && error.errors.some(isConnectionError)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_ERRNOS.has(code)) return true;
    if (/^(08[0-9A-Z]{3}|57P0[1-3])$/.test(code)) return true;
  }
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/.test(message);
}
