// Fault tests: 10,000 random and mutated client inputs per database target, generated with
// fast-check, against a real server (tiny trained model, real engine worker, real database):
// WebSocket frames (valid frames with mutated fields, wrong types, huge numbers, unknown types,
// invalid JSON, binary) and REST requests (bodies, path ids, query strings and tokens for the rating,
// comparison, conversation, OpenAI and admin routes). Nothing may crash the server or get a 5xx /
// `internal` answer; every refusal is an error frame or a 4xx with the error body; every generation
// that started ends; and a normal chat works afterwards.
//
// Cost: generations are capped at MAX_NEW_TOKENS=4 so that the frames that happen to be valid chats
// stay cheap; one socket and one keep-alive HTTP client serve every run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { getMessage } from '../db/index.ts';
import type { ErrorCode, ErrorFrame, ServerFrame } from '../server/protocol.ts';
import { ADMIN_TOKEN, databaseTargets, eventually, newSession, startTestServer, TestSocket, type TestServer } from './helpers/server-harness.ts';

// 10,000 inputs in all, shared by the database targets (time: PostgreSQL answers slower than PGlite).
const TARGETS = databaseTargets();
const WS_RUNS = Math.round(6000 / TARGETS.length);
const REST_RUNS = Math.round(4000 / TARGETS.length);
const MAX_FRAME_BYTES = 8192;

/** What a client may be told: refusals with a client-side cause, never `internal` or `unavailable`. */
const CLIENT_ERRORS: Record<string, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  busy: 429,
  rate_limited: 429,
};
const FRAME_TYPES = new Set(['start', 'delta', 'done', 'rated', 'chosen', 'error', 'model']);

/** Ids that exist on the server (filled in before the runs), to reach past "not found" into real rows. */
interface Known {
  conversation: number;
  userMessage: number;
  reply: number;
  otherReply: number;
  otherConversation: number;
  modelVersion: number;
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------------

const HUGE = ['1e999', '-1e999', '123456789012345678901234567890', '9007199254740993', '-9007199254740993', '1e308', '4.9e-324', '-0', '0.0000001', '1E+400'];

/** Short strings of the characters that text columns, jsonb and JSON escaping trip over. */
const edgyText = fc.string({ unit: fc.constantFrom('a', ' ', '\u0000', '\ud800', '\udc00', '😀', '\ufffd', '"', '\\', '\n', '\u2028'), minLength: 1, maxLength: 6 });

/** Values of every JSON type, with the edges that break number and string handling. */
const weird = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 1.5, -0.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 53), 1e20, -1e20, Number.MAX_VALUE, Number.MIN_VALUE, '', ' ', '0', '1', '-1', 'null', 'NaN', '__proto__', 'constructor', 'a'.repeat(200), '\u0000', '\ud800', '😀', [], {}, [1], [''], { a: 1 }),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  edgyText,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Mostly `a`, sometimes anything: a frame has several fields, and each weird one alone makes it invalid. */
const orWeird = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: a, weight: 10 }, { arbitrary: weird, weight: 1 });

function ids(k: Known) {
  const real = fc.constantFrom(k.conversation, k.userMessage, k.reply, k.otherReply, k.otherConversation);
  return {
    /** A row id: mostly plausible, often a real one (own or another session's). */
    row: orWeird(fc.oneof({ arbitrary: real, weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 2000 }), weight: 1 })),
    request: orWeird(fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.integer({ min: -1000, max: 1000 }))),
  };
}

/** Options inside the model's ranges (tight ones included), so that they reach the decoders. */
const validDecoding = fc.record(
  {
    strategy: fc.constantFrom('greedy', 'beam_search', 'sample'),
    max_new_tokens: fc.integer({ min: 1, max: 4 }),
    beam_width: fc.integer({ min: 1, max: 3 }),
    length_penalty: fc.double({ min: -10, max: 10, noNaN: true }),
    repetition_penalty: fc.oneof(fc.double({ min: 1e-6, max: 10, noNaN: true }), fc.constant(Number.MIN_VALUE)),
    no_repeat_ngram_size: fc.integer({ min: 0, max: 16 }),
    temperature: fc.oneof(fc.double({ min: 0, max: 5, noNaN: true }), fc.constantFrom(0, Number.MIN_VALUE)),
    top_k: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 65536 })),
    top_p: fc.oneof(fc.double({ min: 1e-9, max: 1, noNaN: true }), fc.constant(Number.MIN_VALUE)),
    seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    stop: fc.array(fc.oneof(fc.string({ minLength: 1, maxLength: 3 }), fc.constantFrom('.', ' ', 'e', '\n', '(', '*', '$', '\\')), { maxLength: 4 }),
  },
  { requiredKeys: [] },
);

const decodingArb = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 2 },
  { arbitrary: validDecoding, weight: 4 },
  {
    arbitrary: fc.record(
      {
        strategy: orWeird(fc.constantFrom('greedy', 'beam_search', 'sample')),
        max_new_tokens: orWeird(fc.integer({ min: -2, max: 6 })),
        beam_width: orWeird(fc.integer({ min: 0, max: 20 })),
        length_penalty: orWeird(fc.double({ min: -5, max: 5, noNaN: true })),
        repetition_penalty: orWeird(fc.double({ min: 0, max: 5, noNaN: true })),
        no_repeat_ngram_size: orWeird(fc.integer({ min: -1, max: 8 })),
        temperature: orWeird(fc.double({ min: 0, max: 5, noNaN: true })),
        top_k: orWeird(fc.integer({ min: -1, max: 1000 })),
        top_p: orWeird(fc.double({ min: -0.5, max: 1.5, noNaN: true })),
        seed: orWeird(fc.integer()),
        stop: orWeird(fc.array(fc.oneof(fc.string({ maxLength: 4 }), edgyText), { maxLength: 5 })),
      },
      { requiredKeys: [] },
    ),
    weight: 3,
  },
  { arbitrary: weird, weight: 1 },
);

const contentArb = orWeird(fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), edgyText));

/** Frames of every client type, mostly well formed (so that they reach the handlers). */
function validishFrame(k: Known): fc.Arbitrary<Record<string, unknown>> {
  const { row, request } = ids(k);
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
  const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return fc.oneof(
    fc.record({ type: fc.constant('chat'), id: request, conversation_id: opt(row), parent_id: opt(fc.oneof(row, fc.constant(null))), content: contentArb, decoding: decodingArb }).map(clean),
    fc.record({ type: fc.constant('regenerate'), id: request, message_id: row, decoding: decodingArb }).map(clean),
    fc.record({ type: fc.constant('cancel'), id: request }),
    fc.record({ type: fc.constant('rate'), id: opt(request), message_id: row, value: orWeird(fc.constantFrom(1, -1, 0)), reason: opt(orWeird(fc.string({ maxLength: 30 }))) }).map(clean),
    fc
      .record({
        type: fc.constant('compare'),
        conversation_id: opt(row),
        parent_id: opt(fc.oneof(row, fc.constant(null))),
        content: contentArb,
        a: orWeird(fc.record({ id: request, decoding: decodingArb }).map(clean)),
        b: orWeird(fc.record({ id: request, decoding: decodingArb }).map(clean)),
      })
      .map(clean),
    fc.record({ type: fc.constant('choose'), id: opt(request), a: row, b: row, choice: orWeird(fc.constantFrom('a', 'b', 'tie', 'both_bad')) }).map(clean),
  );
}

type Mutation = { kind: 'none' } | { kind: 'drop'; key: number } | { kind: 'set'; key: number; value: unknown } | { kind: 'extra'; key: string; value: unknown } | { kind: 'type'; value: unknown } | { kind: 'nest'; key: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('drop' as const), key: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key: fc.nat(), value: weird }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('extra' as const), key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'type ')), value: weird }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('type' as const), value: orWeird(fc.constantFrom('CHAT', 'chat ', 'ping', '', 'done', 'error', 'model', 'start', 'rated')) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('nest' as const), key: fc.nat() }), weight: 1 },
);

function mutate(frame: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const out: Record<string, unknown> = { ...frame };
  // `type` has its own mutation; aiming the others at it would mostly test the discriminator.
  const keys = Object.keys(out).length > 1 ? Object.keys(out).filter((k) => k !== 'type') : Object.keys(out);
  const pick = (i: number) => keys[i % keys.length];
  switch (m.kind) {
    case 'none':
      return out;
    case 'drop':
      delete out[pick(m.key)];
      return out;
    case 'set':
      out[pick(m.key)] = m.value;
      return out;
    case 'extra':
      // defineProperty: a plain assignment of "__proto__" would set the prototype, not a field.
      Object.defineProperty(out, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
      return out;
    case 'type':
      out.type = m.value;
      return out;
    case 'nest':
      out[pick(m.key)] = [out[pick(m.key)]];
      return out;
  }
}

/** How a frame is sent, and whether the server must refuse it outright (bad_request, at once). */
interface FrameCase {
  kind: 'mutated' | 'huge-number' | 'invalid-json' | 'not-object' | 'unknown-type' | 'binary';
  data: string | Buffer;
}

function frameCase(k: Known): fc.Arbitrary<FrameCase> {
  const mutated = fc.tuple(validishFrame(k), mutationArb).map(([f, m]) => JSON.stringify(mutate(f, m)));
  return fc.oneof(
    { arbitrary: mutated.map((data) => ({ kind: 'mutated' as const, data })), weight: 12 },
    {
      // A numeric literal of a valid-ish frame replaced by one no JS number holds exactly (or at all).
      arbitrary: fc.tuple(validishFrame(k), fc.constantFrom(...HUGE), fc.nat()).map(([f, huge, n]) => {
        const text = JSON.stringify(f);
        const numbers = [...text.matchAll(/(?<=[:[,])-?\d+(\.\d+)?([eE][+-]?\d+)?(?=[,}\]])/g)];
        if (numbers.length === 0) return { kind: 'huge-number' as const, data: text.replace(/}$/, `,"n":${huge}}`) };
        const hit = numbers[n % numbers.length];
        return { kind: 'huge-number' as const, data: text.slice(0, hit.index) + huge + text.slice(hit.index! + hit[0].length) };
      }),
      weight: 3,
    },
    {
      arbitrary: fc.oneof(
        fc.tuple(mutated, fc.nat()).map(([t, n]) => t.slice(0, n % Math.max(1, t.length - 1))), // truncated
        fc.string({ maxLength: 60 }),
        fc.constantFrom('', ' ', '{', '}', '{"type":"chat",}', "{'type':'chat'}", '{"type":"chat","id":1,"content":"x"', 'NaN', 'undefined', '[', '"\\ud800', '{"type":"chat"}}', '\u0000'),
      ).filter((s) => {
        try {
          JSON.parse(s);
          return false;
        } catch {
          return true;
        }
      }).map((data) => ({ kind: 'invalid-json' as const, data })),
      weight: 3,
    },
    {
      arbitrary: fc.oneof(fc.constantFrom('[]', '[1,2]', 'null', '1', '"chat"', 'true', '1e999', '[{"type":"chat","id":1,"content":"x"}]'), fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => JSON.stringify(v))).map((data) => ({ kind: 'not-object' as const, data })),
      weight: 1,
    },
    {
      arbitrary: fc.tuple(validishFrame(k), fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('Chat', 'done', 'error', 'model', 'start', 'ping', 'toString', '__proto__'), weird)).filter(([, t]) => !['chat', 'regenerate', 'cancel', 'rate', 'compare', 'choose'].includes(t as string)).map(([f, type]) => ({ kind: 'unknown-type' as const, data: JSON.stringify({ ...f, type }) })),
      weight: 2,
    },
    {
      arbitrary: fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), mutated.map((t) => Buffer.from(t))).map((data) => ({ kind: 'binary' as const, data })),
      weight: 1,
    },
  );
}

/** One REST request: route, method, path id, query, body and credentials. */
interface RestCase {
  method: string;
  path: string;
  auth: 'session' | 'other' | 'admin' | 'none' | 'garbage';
  body?: string;
  contentType?: string;
}

function restCase(k: Known): fc.Arbitrary<RestCase> {
  const { row } = ids(k);
  // Lone surrogates cannot be percent-encoded; their (invalid) UTF-8 bytes are among the constants.
  const encode = (v: unknown) => encodeURIComponent(String(v).replace(/[\ud800-\udfff]/g, '\ufffd'));
  const segment = fc.oneof(
    { arbitrary: row.map(encode), weight: 4 },
    { arbitrary: fc.constantFrom('0', '-1', '1.5', '1e3', '0x10', '999999999999999', '1000000000000000', '99999999999999999999', 'abc', '%00', '%ZZ', '%E2%82', '%ED%A0%80', ' 1', '+1', '١'), weight: 2 },
    { arbitrary: fc.string({ maxLength: 10 }).map(encode), weight: 1 },
  );
  const jsonBody = (base: fc.Arbitrary<Record<string, unknown>>) =>
    fc.oneof(
      { arbitrary: fc.tuple(base, mutationArb).map(([b, m]) => JSON.stringify(mutate(b, m))), weight: 30 },
      { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), weight: 5 },
      { arbitrary: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', '{', 'null', '{"value":1e999}', `{"value":${'9'.repeat(40)}}`)), weight: 5 },
      { arbitrary: fc.constant(undefined), weight: 5 },
      { arbitrary: fc.constant(JSON.stringify({ pad: 'x'.repeat(MAX_FRAME_BYTES) })), weight: 1 },
    );
  const rating = fc.record({ value: orWeird(fc.constantFrom(1, -1, 0)), reason: fc.option(fc.oneof(fc.string({ maxLength: 20 }), fc.constant('r'.repeat(1001)), weird), { nil: undefined }) }, { requiredKeys: ['value'] });
  const choice = fc.record({ a: row, b: row, choice: orWeird(fc.constantFrom('a', 'b', 'tie', 'both_bad')) });
  const message = fc.record({ role: orWeird(fc.constantFrom('system', 'developer', 'user', 'assistant')), content: fc.oneof(contentArb, fc.array(fc.record({ type: orWeird(fc.constant('text')), text: orWeird(fc.string({ maxLength: 10 })) }), { maxLength: 3 }), fc.constant(null)) });
  const completion = fc.record(
    {
      model: orWeird(fc.constant('rlhf-chat')),
      messages: fc.oneof({ arbitrary: fc.array(message, { minLength: 1, maxLength: 3 }), weight: 5 }, { arbitrary: weird, weight: 1 }),
      stream: orWeird(fc.boolean()),
      stream_options: orWeird(fc.record({ include_usage: orWeird(fc.boolean()) })),
      max_tokens: orWeird(fc.integer({ min: -1, max: 6 })),
      max_completion_tokens: orWeird(fc.integer({ min: -1, max: 6 })),
      temperature: orWeird(fc.double({ min: 0, max: 3, noNaN: true })),
      top_p: orWeird(fc.double({ min: 0, max: 1, noNaN: true })),
      seed: orWeird(fc.integer()),
      stop: fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 5 }), weird),
      n: orWeird(fc.constant(1)),
      tools: weird,
      strategy: orWeird(fc.constantFrom('greedy', 'beam_search', 'sample')),
      beam_width: orWeird(fc.integer({ min: 0, max: 10 })),
      repetition_penalty: orWeird(fc.double({ min: 0, max: 3, noNaN: true })),
      top_k: orWeird(fc.integer({ min: -1, max: 100 })),
    },
    { requiredKeys: ['messages'] },
  );
  const title = fc.record({ title: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('t'.repeat(201)), weird) });
  const query = fc.oneof(
    fc.constant(''),
    fc.tuple(fc.constantFrom('kind', 'source', 'after_id', 'limit', 'offset', 'x'), fc.oneof(fc.constantFrom('pairs', 'ratings', 'policy', 'reward', 'siblings,compare', 'import,,bogus', '-1', '1e99', '99999999999999999999', 'NaN', ''), fc.string({ maxLength: 8 }))).map(([key, v]) => `?${key}=${encode(v)}`),
  );
  const auth = fc.constantFrom<RestCase['auth']>('session', 'session', 'session', 'session', 'session', 'session', 'other', 'admin', 'none', 'garbage');
  const adminAuth = fc.constantFrom<RestCase['auth']>('admin', 'admin', 'admin', 'session', 'none', 'garbage');
  const method = (usual: string) => fc.oneof({ arbitrary: fc.constant(usual), weight: 8 }, { arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'), weight: 1 });
  const contentType = fc.oneof({ arbitrary: fc.constant('application/json'), weight: 6 }, { arbitrary: fc.constantFrom(undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1'), weight: 1 });
  return fc.oneof(
    fc.record({ method: method('POST'), path: segment.map((s) => `/api/messages/${s}/rating`), auth, body: jsonBody(rating), contentType }),
    fc.record({ method: method('POST'), path: fc.constant('/api/comparisons'), auth, body: jsonBody(choice), contentType }),
    fc.record({ method: fc.constantFrom('GET', 'POST'), path: fc.tuple(fc.constant('/api/conversations'), query).map(([p, q]) => p + q), auth, body: jsonBody(title), contentType }),
    fc.record({ method: fc.constantFrom('GET', 'PATCH', 'PATCH', 'DELETE', 'POST'), path: segment.map((s) => `/api/conversations/${s}`), auth, body: jsonBody(title), contentType }),
    fc.record({ method: method('POST'), path: fc.constant('/v1/chat/completions'), auth, body: jsonBody(completion), contentType }),
    fc.record({ method: method('POST'), path: fc.oneof(segment, fc.constant(String(k.modelVersion))).map((s) => `/api/admin/models/${s}/activate`), auth: adminAuth, body: fc.constant(undefined), contentType }),
    fc.record({ method: method('POST'), path: fc.constant('/api/admin/models/rollback'), auth: adminAuth, body: fc.constant(undefined), contentType }),
    fc.record({ method: method('GET'), path: fc.tuple(fc.constantFrom('/api/admin/export', '/api/feedback/export', '/api/admin/stats', '/api/admin/runs', '/api/admin/models', '/api/models'), query).map(([p, q]) => p + q), auth: adminAuth, body: fc.constant(undefined), contentType }),
  );
}

// ---------------------------------------------------------------------------------------------------
// The suites
// ---------------------------------------------------------------------------------------------------

for (const target of TARGETS) {
  describe(`fault: random and mutated frames (${target.name})`, () => {
    let t: TestServer;
    let token: string;
    let otherToken: string;
    let known: Known;

    before(async () => {
      t = await startTestServer(target, { MAX_NEW_TOKENS: '4', MAX_BEAM_WIDTH: '3', MAX_FRAME_BYTES: String(MAX_FRAME_BYTES), MAX_PROMPT_CHARS: '200', RATE_LIMIT_PER_MINUTE: '100000', LOG_LEVEL: process.env.FAULT_LOG_LEVEL ?? 'silent' });
      token = await newSession(t.url);
      otherToken = await newSession(t.url);
      const ws = await TestSocket.open(t.wsUrl, { token });
      const other = await TestSocket.open(t.wsUrl, { token: otherToken });
      try {
        const mine = await ws.request({ type: 'chat', id: 'seed', content: 'The river', decoding: { max_new_tokens: 3 } });
        const theirs = await other.request({ type: 'chat', id: 'seed', content: 'The city', decoding: { max_new_tokens: 3 } });
        assert.ok(mine.done && theirs.done);
        known = {
          conversation: mine.start!.conversation_id,
          userMessage: mine.start!.parent_id!,
          reply: mine.done.message_id,
          otherReply: theirs.done.message_id,
          otherConversation: theirs.start!.conversation_id,
          modelVersion: t.server.deps.models.current!.id,
        };
      } finally {
        ws.close();
        other.close();
      }
    });
    after(async () => {
      await t?.close();
    });

    test(`${WS_RUNS} WebSocket frames: only legitimate frames or client errors come back, every started reply ends`, async (tc) => {
      const ws = await TestSocket.open(t.wsUrl, { token });
      let sentinel = 0;
      let mustRefuse = 0;
      const logged = captureConsoleErrors();
      try {
        await fc.assert(
          fc.asyncProperty(frameCase(known), async ({ kind, data }) => {
            logged.messages.length = 0;
            const from = ws.frames.length;
            ws.send(data);
            // A frame of an unknown type carrying an id is refused at once, in order, naming that id: when
            // its error arrives, every synchronous answer to `data` has arrived before it.
            const id = `~sentinel-${++sentinel}`;
            ws.send(JSON.stringify({ type: 'sentinel', id }));
            await ws.waitFor((f) => f.type === 'error' && f.id === id, { from });
            // Requests the server acts on after a database or engine round trip answer later: wait for
            // their end, so that every run leaves nothing running and its answers are its own.
            for (const ends of pendingEnds(data)) await ws.waitFor(ends, { from });
            const answers = ws.frames.slice(from).filter((f) => !(f.type === 'error' && f.id === id));
            for (const f of answers) checkFrame(f);
            if (kind !== 'mutated' && kind !== 'huge-number') {
              // Binary, invalid JSON, non-objects and unknown types: refused at once with bad_request.
              mustRefuse += 1;
              const errors = answers.filter((f): f is ErrorFrame => f.type === 'error');
              assert.ok(errors.length >= 1, `no error for ${kind} ${JSON.stringify(String(data))}: ${JSON.stringify(answers)}`);
              for (const e of errors) assert.equal(e.code, 'bad_request', JSON.stringify(e));
            }
            assert.equal(ws.ws.readyState, ws.ws.OPEN, 'the socket stays open');
            assert.deepEqual(logged.messages, [], 'errors the server caught and printed');
          }),
          { numRuns: WS_RUNS, includeErrorInReport: true, ...replay('WS') },
        );
        assert.ok(mustRefuse > WS_RUNS / 10, `the generators produce outright-invalid frames too (${mustRefuse})`);
        await eventually(() => t.server.deps.engine.requestsInFlight === 0 && t.server.deps.replies.size === 0, { timeoutMs: 30_000, what: 'every generation to end' });
        for (const f of ws.frames) checkFrame(f);
        // Every reply that started ended with done or error, once.
        const started = ws.frames.filter((f) => f.type === 'start');
        for (const s of started) {
          const ends = ws.frames.filter((f) => (f.type === 'done' || f.type === 'error') && 'id' in f && JSON.stringify(f.id) === JSON.stringify(s.id) && ws.frames.indexOf(f) > ws.frames.indexOf(s));
          assert.ok(ends.length >= 1, `reply ${JSON.stringify(s)} never ended`);
          const stored = await getMessage(t.server.deps.db, (s as { message_id: number }).message_id);
          assert.ok(stored?.finish_reason, `reply ${JSON.stringify(s)} stored without a finish reason: ${JSON.stringify(stored)}`);
        }
        assert.ok(started.length > 0, 'some frames were valid requests that generated');
        const kinds = new Map<string, number>();
        for (const f of ws.frames) kinds.set(f.type === 'error' ? `error:${f.code}` : f.type, (kinds.get(f.type === 'error' ? `error:${f.code}` : f.type) ?? 0) + 1);
        tc.diagnostic(`frames received: ${JSON.stringify(Object.fromEntries(kinds))}`);
      } finally {
        ws.close();
        logged.restore();
      }
      assert.deepEqual(logged.messages, [], 'errors the server caught and printed');
      await servesNormally(t, token);
    });

    test(`${REST_RUNS} REST requests: no 5xx, every refusal is a 4xx with an error body`, async (tc) => {
      const statuses = new Map<number, number>();
      const logged = captureConsoleErrors();
      try {
      await fc.assert(
        fc.asyncProperty(restCase(known), async (rc) => {
          logged.messages.length = 0;
          const bearer = { session: token, other: otherToken, admin: ADMIN_TOKEN, none: undefined, garbage: 'x'.repeat(40) }[rc.auth];
          const headers: Record<string, string> = {};
          if (bearer) headers.Authorization = `Bearer ${bearer}`;
          if (rc.contentType) headers['Content-Type'] = rc.contentType;
          const withBody = rc.body !== undefined && rc.method !== 'GET' && rc.method !== 'HEAD';
          const res = await fetch(`${t.url}${rc.path}`, { method: rc.method, headers, body: withBody ? rc.body : undefined });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const what = `${rc.method} ${rc.path} (${rc.auth}) ${withBody ? rc.body!.slice(0, 300) : ''} → ${res.status} ${text.slice(0, 300)}`;
          assert.ok(res.status < 500, what);
          if (res.status >= 400 && rc.method !== 'HEAD') {
            const body = JSON.parse(text) as { error: { code: ErrorCode; message: string } };
            assert.ok(body.error.code in CLIENT_ERRORS, what);
            assert.equal(CLIENT_ERRORS[body.error.code], res.status, what);
            assert.equal(typeof body.error.message, 'string');
          }
          if (rc.path.startsWith('/v1/') && res.status === 200 && text.startsWith('data:')) {
            // A stream that started reports a failure inside it; it must not be an internal one.
            assert.doesNotMatch(text, /"code":"(internal|unavailable)"/, what);
            assert.match(text, /data: \[DONE\]\s*$/, what);
          }
          if (/export/.test(rc.path) && res.status === 200 && rc.method === 'GET') {
            // Streamed after the 200: a failure would show as a cut or garbled body (and a printed error).
            for (const line of text.split('\n').filter(Boolean)) JSON.parse(line);
          }
          assert.deepEqual(logged.messages, [], what);
        }),
        { numRuns: REST_RUNS, includeErrorInReport: true, ...replay('REST') },
      );
      } finally {
        logged.restore();
      }
      tc.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
      const ok = [...statuses].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0);
      assert.ok(ok > REST_RUNS / 20, `some requests were valid and served: ${JSON.stringify([...statuses])}`);
      await eventually(() => t.server.deps.engine.requestsInFlight === 0 && t.server.deps.replies.size === 0, { timeoutMs: 30_000, what: 'every generation to end' });
      await servesNormally(t, token);
    });

    test('no request was answered 5xx and no socket was told "internal" (metrics)', async () => {
      const lines = (await (await fetch(`${t.url}/metrics`)).text()).split('\n');
      const counted = (re: RegExp) => lines.filter((l) => re.test(l) && !/ 0$/.test(l));
      assert.deepEqual(counted(/^http_requests_total\{[^}]*status="5\d\d"/), []);
      assert.deepEqual(counted(/^chat_errors_total\{code="(internal|unavailable)"\}/), []);
      assert.equal(counted(/^chat_errors_total\{code="bad_request"\}/).length, 1, 'the counters did count the refusals');
      assert.ok(counted(/^http_requests_total\{[^}]*status="4\d\d"/).length > 0, 'and the REST refusals');
    });
  });
}

/** Matchers of the frames that end what `data` asks for, when the server answers it after an await. */
function pendingEnds(data: string | Buffer): ((f: ServerFrame) => boolean)[] {
  if (typeof data !== 'string') return [];
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return [];
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [];
  const frame = json as { type?: unknown; id?: unknown; a?: { id?: unknown }; b?: { id?: unknown } };
  // The server names a request in its answers only when the id is one it can read (protocol.ts).
  const readable = (v: unknown) => (typeof v === 'string' && v.length >= 1 && v.length <= 128) || (typeof v === 'number' && Number.isSafeInteger(v));
  const endOf = (id: unknown, types: string[]) => (f: ServerFrame) => types.includes(f.type) && (id === undefined ? !('id' in f) : 'id' in f && f.id === id);
  switch (frame.type) {
    case 'chat':
    case 'regenerate':
      return readable(frame.id) ? [endOf(frame.id, ['done', 'error'])] : [];
    case 'compare':
      return [frame.a?.id, frame.b?.id].filter(readable).map((id) => endOf(id, ['done', 'error']));
    case 'rate':
    case 'choose': {
      const types = [frame.type === 'rate' ? 'rated' : 'chosen', 'error'];
      if (frame.id === undefined) return [endOf(undefined, types)];
      return readable(frame.id) ? [endOf(frame.id, types)] : [];
    }
    default:
      return [];
  }
}

/** FAULT_SEED_WS / FAULT_SEED_REST (and _PATH), from a failure report, replay that run. */
function replay(which: 'WS' | 'REST'): { seed?: number; path?: string } {
  const seed = process.env[`FAULT_SEED_${which}`];
  const path = process.env[`FAULT_PATH_${which}`];
  return { ...(seed && { seed: Number(seed) }), ...(path && { path }) };
}

/**
 * Records console.error calls: errors the server catches without a response status (a failure inside a
 * stream that already sent its 200, hono's fallback) are printed there; the pino logger is silent.
 */
function captureConsoleErrors(): { messages: string[]; restore(): void } {
  const original = console.error;
  const messages: string[] = [];
  console.error = (...args: unknown[]) => {
    messages.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  return { messages, restore: () => (console.error = original) };
}

function checkFrame(f: ServerFrame): void {
  assert.ok(FRAME_TYPES.has(f.type), `unexpected frame ${JSON.stringify(f)}`);
  if (f.type === 'error') {
    assert.ok(f.code in CLIENT_ERRORS, `error frame with a server-side code: ${JSON.stringify(f)}`);
    assert.equal(typeof f.message, 'string');
  }
}

/** A normal chat over a fresh socket, a /v1 completion and a ready /health. */
async function servesNormally(t: TestServer, token: string): Promise<void> {
  const ws = await TestSocket.open(t.wsUrl, { token });
  try {
    const ex = await ws.request({ type: 'chat', id: 'after', content: 'The weather today', decoding: { max_new_tokens: 4 } });
    assert.ok(ex.done, JSON.stringify(ex.error));
    assert.equal(ex.deltas.join(''), ex.done.text);
    assert.equal(ex.done.model_version, t.server.deps.models.current!.id);
  } finally {
    ws.close();
  }
  const res = await fetch(`${t.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(((await res.json()) as { object: string }).object, 'chat.completion');
  assert.equal((await fetch(`${t.url}/health`)).status, 200);
}
