// The embedded database's own thread: PGlite (PostgreSQL compiled to WebAssembly) runs here so that
// query execution and result parsing do not take the server's event loop, which streams tokens.
// Plain JavaScript so that it starts without a TypeScript loader. Protocol (pglite-remote.ts):
//   in:  { type: 'query', id, sql, params, txn?, end? } | { type: 'close' }
//   out: { type: 'ready' } | { type: 'failed', error } | { type: 'result', id, rows, affectedRows }
//        | { type: 'result', id, error } | { type: 'closed' }
//   Every result carries `busyMs`: how long this thread's event loop has been busy since it started
//   (the database's share of the machine in the load test; a per-query timer would also count the
//   time a query waits behind the others inside PGlite).
// Errors travel as plain objects with PostgreSQL's fields (code, constraint, ...), because the
// repositories read the SQLSTATE and the constraint's name.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const INT8_OID = 20;

/** int8 (ids, counts) as a JS number; refuses values that a number cannot hold exactly. */
function parseInt8(text) {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} exceeds Number.MAX_SAFE_INTEGER`);
  return value;
}

const ERROR_FIELDS = ['name', 'message', 'code', 'detail', 'hint', 'constraint', 'table', 'column', 'schema', 'severity', 'position'];

function plainError(error) {
  const out = {};
  for (const key of ERROR_FIELDS) {
    const value = error?.[key];
    if (typeof value === 'string' || typeof value === 'number') out[key] = value;
  }
  if (!out.message) out.message = String(error);
  return out;
}

const port = parentPort;
const pglite = new PGlite({ dataDir: workerData.dataDir ?? undefined, parsers: { [INT8_OID]: parseInt8 } });
try {
  await pglite.waitReady;
  port.postMessage({ type: 'ready' });
} catch (error) {
  port.postMessage({ type: 'failed', error: plainError(error) });
}

// Queries are queued here, so the main thread can send the next ones without waiting for the
// answers: the database never idles while the main thread is busy with sockets. PGlite is one
// session, so a transaction must not interleave with anything else: its statements carry `txn` (the
// first one is its BEGIN), and while it is open only its own statements run; the others wait in the
// queue, in order, until the statement marked `end` (COMMIT or ROLLBACK) has run.
const queue = [];
let activeTxn = null;
let pumping = false;
let closing = false;

/** Answers query `id`: rows or an error, with the thread's busy time so far. */
function answer(id, outcome) {
  port.postMessage({ type: 'result', id, ...outcome, busyMs: performance.eventLoopUtilization().active });
}

/** A query sent after the close was asked for, or left waiting when it came. */
const refuse = (msg) => answer(msg.id, { error: { message: 'the embedded database is closed' } });

/** Runs one query and answers it; whether it succeeded. */
async function run(msg) {
  try {
    const { rows, affectedRows } = await pglite.query(msg.sql, msg.params, { rowMode: 'object' });
    answer(msg.id, { rows, affectedRows });
    return true;
  } catch (error) {
    answer(msg.id, { error: plainError(error) });
    return false;
  }
}

/** The next query allowed to run: the oldest, or while a transaction is open, its oldest. */
function nextIndex() {
  if (activeTxn === null) return queue.length > 0 ? 0 : -1;
  return queue.findIndex((m) => m.txn === activeTxn);
}

async function pump() {
  if (pumping) return;
  pumping = true;
  try {
    for (let i = nextIndex(); i >= 0; i = nextIndex()) {
      const [msg] = queue.splice(i, 1);
      const opens = msg.txn != null && activeTxn === null;
      if (msg.txn != null) activeTxn = msg.end ? null : msg.txn;
      // A BEGIN that failed opened nothing, and no COMMIT or ROLLBACK will follow it.
      if (!(await run(msg)) && opens) activeTxn = null;
    }
    // Closing waits for what can still run; a transaction left open is rolled back by the close.
    if (closing) {
      queue.splice(0).forEach(refuse);
      if (!pglite.closed) await pglite.close();
      port.postMessage({ type: 'closed' });
      port.close();
    }
  } finally {
    pumping = false;
  }
}

port.on('message', (msg) => {
  if (msg.type === 'query' && closing) {
    refuse(msg);
    return;
  }
  if (msg.type === 'query') queue.push(msg);
  else if (msg.type === 'close') closing = true;
  void pump();
});
