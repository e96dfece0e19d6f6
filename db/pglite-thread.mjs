// The embedded database's own thread: PGlite (PostgreSQL compiled to WebAssembly) runs here so that
// query execution and result parsing do not take the server's event loop, which streams tokens.
// Plain JavaScript so that it starts without a TypeScript loader. Protocol (pglite-remote.ts):
//   in:  { type: 'query', id, sql, params } | { type: 'close' }
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

port.on('message', async (msg) => {
  if (msg.type === 'query') {
    try {
      const { rows, affectedRows } = await pglite.query(msg.sql, msg.params, { rowMode: 'object' });
      port.postMessage({ type: 'result', id: msg.id, rows, affectedRows, busyMs: performance.eventLoopUtilization().active });
    } catch (error) {
      port.postMessage({ type: 'result', id: msg.id, error: plainError(error), busyMs: performance.eventLoopUtilization().active });
    }
  } else if (msg.type === 'close') {
    if (!pglite.closed) await pglite.close();
    port.postMessage({ type: 'closed' });
    port.close();
  }
});
