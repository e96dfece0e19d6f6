// Start-up pieces of the server: configuration, limits, admin token, origin rule, the client-frame
// schema, choosing the served model version, and `npm start` as a real process (health, SIGTERM).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { readCheckpointMeta } from '../model/checkpoint/index.ts';
import { ensureAdminToken } from '../server/admin-token.ts';
import { ClientLimits } from '../server/chat/limits.ts';
import { clientAddress } from '../server/client-address.ts';
import { ConfigError, loadConfig } from '../server/config.ts';
import { getActiveModelVersion, listModelVersions, migrateToLatest, openMemoryDatabase, type DatabaseHandle } from '../db/index.ts';
import { ensureActivePolicy } from '../server/initial-policy.ts';
import { ApiError } from '../server/errors.ts';
import { Origins } from '../server/origins.ts';
import { ClientFrameSchema } from '../server/protocol.ts';
import { tinyCheckpoint } from './helpers/server-harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const silent = pino({ level: 'silent' });

describe('configuration', () => {
  test('defaults: loopback port 8080, PGlite under ./.state, limits named', () => {
    const c = loadConfig({ env: {}, cwd: '/srv/app' });
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.stateDir, '/srv/app/.state');
    assert.deepEqual(c.allowedOrigins, []);
    assert.deepEqual(c.engine, { maxRows: 16, maxQueue: 32 });
    assert.equal(c.limits.maxNewTokens, 256);
  });

  test('flags win over the environment; empty variables count as unset', () => {
    const c = loadConfig({ env: { PORT: '9000', HOST: '', ALLOWED_ORIGINS: 'https://a.example, http://b.example:8080' }, argv: ['--port', '9001', '--checkpoint', 'm'], cwd: '/x' });
    assert.equal(c.port, 9001);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.checkpoint, '/x/m');
    assert.deepEqual(c.allowedOrigins, ['https://a.example', 'http://b.example:8080']);
  });

  test('invalid values stop start-up with every problem named', () => {
    assert.throws(
      () => loadConfig({ env: { PORT: 'eighty', MAX_BEAM_WIDTH: '99', DATABASE_URL: 'mysql://x', ADMIN_TOKEN: 'short', ALLOWED_ORIGINS: 'https://ok.example/path' } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const name of ['PORT', 'MAX_BEAM_WIDTH', 'DATABASE_URL', 'ADMIN_TOKEN', 'ALLOWED_ORIGINS']) assert.match(err.message, new RegExp(name));
        assert.match(err.message, /MAX_BEAM_WIDTH="99": must be an integer in \[1, 16\]/);
        return true;
      },
    );
    assert.throws(() => loadConfig({ env: {}, argv: ['--colour', 'red'] }), /Unknown option '--colour'/);
    // Secrets stay out of the message: a short admin token, a database URL's password.
    assert.throws(
      () => loadConfig({ env: { ADMIN_TOKEN: 'hunter2-short', DATABASE_URL: 'mysql://app:s3cret-pass@db:3306/x' } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /ADMIN_TOKEN=\(hidden, 13 characters\): must be at least 16 characters/);
        assert.match(err.message, /DATABASE_URL="mysql:\/\/app:\*\*\*@db:3306\/x": must start with postgres/);
        assert.doesNotMatch(err.message, /hunter2|s3cret/);
        return true;
      },
    );
  });
});

describe('limits, tokens and origins', () => {
  const LIMITS = { maxInflightPerSession: 2, maxInflightPerAddress: 3, rateLimitPerMinute: 3, rateLimitPerAddressPerMinute: 5, feedbackPerMinute: 2, feedbackPerAddressPerMinute: 3, sessionsPerAddressPerMinute: 2 };

  test('a session gets MAX_INFLIGHT_PER_SESSION slots and RATE_LIMIT_PER_MINUTE starts per minute', () => {
    let now = 0;
    const limits = new ClientLimits({ ...LIMITS, maxInflightPerAddress: 100, rateLimitPerAddressPerMinute: 100 }, () => now);
    const a = (sessionId: number) => ({ sessionId, address: '10.0.0.1' });
    const r1 = limits.acquire(a(1));
    limits.acquire(a(1));
    assert.throws(() => limits.acquire(a(1)), (e: unknown) => e instanceof ApiError && e.code === 'rate_limited' && /MAX_INFLIGHT_PER_SESSION/.test(e.message));
    limits.acquire(a(2), 2); // other sessions are separate
    r1();
    r1(); // releasing twice is harmless
    limits.acquire(a(1));
    assert.throws(() => limits.acquire(a(1)), /RATE_LIMIT_PER_MINUTE|MAX_INFLIGHT/);
    now += 61_000;
    assert.throws(() => limits.acquire(a(1)), /MAX_INFLIGHT_PER_SESSION/, 'the window moved on, the in-flight limit still holds');
  });

  test('fresh sessions buy nothing: in-flight, start, feedback and session-creation limits hold per client address', () => {
    let now = 0;
    const limits = new ClientLimits(LIMITS, () => now);
    const from = (sessionId: number, address = '10.0.0.1') => ({ sessionId, address });
    const releases = [limits.acquire(from(1)), limits.acquire(from(2)), limits.acquire(from(3))];
    assert.throws(() => limits.acquire(from(4)), (e: unknown) => e instanceof ApiError && e.code === 'rate_limited' && /MAX_INFLIGHT_PER_ADDRESS/.test(e.message));
    limits.acquire(from(5, '10.0.0.2')); // another address has its own share
    releases.forEach((r) => r());
    limits.acquire(from(6))();
    limits.acquire(from(7))();
    assert.throws(() => limits.acquire(from(8)), /RATE_LIMIT_PER_ADDRESS_PER_MINUTE\); retry in 60s/);
    limits.feedback(from(1));
    limits.feedback(from(1));
    assert.throws(() => limits.feedback(from(1)), /FEEDBACK_PER_MINUTE/);
    limits.feedback(from(2));
    assert.throws(() => limits.feedback(from(3)), /FEEDBACK_PER_ADDRESS_PER_MINUTE/);
    limits.sessionCreated('10.0.0.1');
    limits.sessionCreated('10.0.0.1');
    assert.throws(() => limits.sessionCreated('10.0.0.1'), (e: unknown) => e instanceof ApiError && e.code === 'rate_limited' && e.retryAfter === 60);
    limits.sessionCreated('10.0.0.3');
    now += 60_001;
    limits.sessionCreated('10.0.0.1');
    limits.feedback(from(3));
    limits.acquire(from(9))();
  });

  test('the client address is the socket peer unless TRUST_PROXY names how many proxies appended to X-Forwarded-For', () => {
    assert.equal(clientAddress('::ffff:127.0.0.1', '6.6.6.6', 0), '127.0.0.1', 'a forged header is ignored without TRUST_PROXY');
    assert.equal(clientAddress('10.0.0.9', '6.6.6.6, 203.0.113.7', 1), '203.0.113.7', 'one proxy: the entry it appended');
    assert.equal(clientAddress('10.0.0.9', '6.6.6.6, 203.0.113.7, 10.0.0.8', 2), '203.0.113.7', 'two proxies: the entry the outer one appended');
    assert.equal(clientAddress('10.0.0.9', undefined, 1), '10.0.0.9');
    assert.equal(clientAddress('10.0.0.9', 'not-an-address', 1), '10.0.0.9');
  });

  test('the admin token is generated once into STATE_DIR with mode 0600, then reused; ADMIN_TOKEN wins', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'admin-token-'));
    try {
      const first = await ensureAdminToken({ stateDir: dir });
      assert.equal(first.created, true);
      assert.equal((await stat(first.file!)).mode & 0o777, 0o600);
      const again = await ensureAdminToken({ stateDir: dir });
      assert.deepEqual([again.token, again.created], [first.token, false]);
      assert.equal((await ensureAdminToken({ stateDir: dir, adminToken: 'x'.repeat(20) })).token, 'x'.repeat(20));

      // An existing file with a looser mode: rewritten (too short to be a token) or kept, it ends up 0600.
      await writeFile(first.file!, 'short\n', { mode: 0o644 });
      await chmod(first.file!, 0o644);
      const rewritten = await ensureAdminToken({ stateDir: dir });
      assert.equal(rewritten.created, true);
      assert.equal((await stat(first.file!)).mode & 0o777, 0o600);
      await chmod(first.file!, 0o664);
      assert.equal((await ensureAdminToken({ stateDir: dir })).token, rewritten.token);
      assert.equal((await stat(first.file!)).mode & 0o777, 0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('Origin: the public origin and the allow-list, not the Host header (DNS rebinding); a wildcard HOST without PUBLIC_ORIGIN falls back to Host', () => {
    const loopback = new Origins({ host: '127.0.0.1', publicOrigin: undefined, allowedOrigins: ['https://chat.example'] });
    loopback.listening(8080);
    for (const o of ['http://localhost:8080', 'http://127.0.0.1:8080', 'http://[::1]:8080', 'https://chat.example']) assert.equal(loopback.allows(o, 'localhost:8080'), true, o);
    assert.equal(loopback.allows('https://evil.example', 'localhost:8080'), false);
    assert.equal(loopback.allows('http://localhost:9999', 'localhost:8080'), false);
    // A rebinding page: its own name resolves to 127.0.0.1, so Host and Origin agree; still refused.
    assert.equal(loopback.allows('http://rebind.evil.example:8080', 'rebind.evil.example:8080'), false);

    const proxied = new Origins({ host: '0.0.0.0', publicOrigin: 'https://chat.example.com', allowedOrigins: [] });
    proxied.listening(8080);
    assert.equal(proxied.allows('https://chat.example.com', 'internal:8080'), true);
    assert.equal(proxied.allows('http://internal:8080', 'internal:8080'), false);
    assert.equal(proxied.usesHostHeader, false);

    const wildcard = new Origins({ host: '0.0.0.0', publicOrigin: undefined, allowedOrigins: [] });
    wildcard.listening(8080);
    assert.equal(wildcard.usesHostHeader, true);
    assert.equal(wildcard.allows('http://box.lan:8080', 'box.lan:8080'), true);
    assert.equal(wildcard.allows('http://other.lan:8080', 'box.lan:8080'), false);
  });

  test('the client-frame schema accepts the documented frames and refuses unknown fields', () => {
    const ok = [
      { type: 'chat', id: 1, content: 'hi' },
      { type: 'chat', id: 'a', conversation_id: 3, parent_id: null, content: 'hi', decoding: { strategy: 'beam_search', beam_width: 4 } },
      { type: 'regenerate', id: 2, message_id: 9 },
      { type: 'cancel', id: 2 },
      { type: 'rate', message_id: 9, value: 0 },
      { type: 'compare', content: 'hi', a: { id: 'x' }, b: { id: 'y', decoding: { strategy: 'sample' } } },
      { type: 'choose', a: 1, b: 2, choice: 'both_bad' },
    ];
    for (const frame of ok) assert.equal(ClientFrameSchema.safeParse(frame).success, true, JSON.stringify(frame));
    for (const frame of [{ type: 'chat', id: 1, content: '' }, { type: 'cancel' }, { type: 'rate', message_id: 1, value: 1, extra: 1 }, { type: 'choose', a: 1, b: 2, choice: 'c' }]) {
      assert.equal(ClientFrameSchema.safeParse(frame).success, false, JSON.stringify(frame));
    }
  });
});

describe('which model version is served', () => {
  let handle: DatabaseHandle;
  let dir: string;
  before(async () => {
    handle = await openMemoryDatabase();
    await migrateToLatest(handle.db);
    dir = await mkdtemp(join(tmpdir(), 'served-'));
  });
  after(async () => {
    await handle.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('with no version and no checkpoint anywhere, a random tiny model is created under STATE_DIR', async () => {
    // A project directory without models/default/policy.
    const bare = join(dir, 'bare');
    await mkdir(bare);
    const state = join(dir, 'state');
    const version = await ensureActivePolicy(handle.db, { stateDir: state, root: bare }, silent);
    assert.deepEqual([version.metrics.source, version.checkpoint_path, version.status], ['init', join(state, 'models/init-tiny'), 'active']);
    assert.equal((await readCheckpointMeta(version.checkpoint_path)).kind, 'policy');
    assert.equal((await ensureActivePolicy(handle.db, { stateDir: state, root: bare }, silent)).id, version.id, 'the next start serves it again');
  });

  test('a shipped models/default/policy is served, and takes over from the random fallback', async () => {
    const project = join(dir, 'project');
    await cp(await tinyCheckpoint(), join(project, 'models/default/policy'), { recursive: true });
    const fallback = await getActiveModelVersion(handle.db, 'policy');
    assert.equal(fallback?.metrics.source, 'init');
    const version = await ensureActivePolicy(handle.db, { stateDir: join(dir, 'state'), root: project }, silent);
    assert.deepEqual([version.metrics.source, version.checkpoint_path, version.status], ['default', join(project, 'models/default/policy'), 'active']);
    assert.equal(version.parent_id, fallback.id);
    assert.equal((await ensureActivePolicy(handle.db, { stateDir: join(dir, 'state'), root: project }, silent)).id, version.id);
  });

  test('CHECKPOINT is registered once and activated; another checkpoint becomes the next active version', async () => {
    const a = join(dir, 'a');
    await cp(await tinyCheckpoint(), a, { recursive: true });
    const initial = await getActiveModelVersion(handle.db, 'policy');
    const v1 = await ensureActivePolicy(handle.db, { checkpoint: a, stateDir: dir }, silent);
    assert.equal(v1.parent_id, initial?.id ?? null);
    assert.deepEqual([v1.status, v1.checkpoint_path, v1.metrics.source], ['active', a, 'checkpoint']);
    const meta = JSON.parse(await readFile(join(a, 'meta.json'), 'utf8'));
    assert.equal(v1.sha256, meta.weights.sha256);
    assert.equal((await ensureActivePolicy(handle.db, { checkpoint: a, stateDir: dir }, silent)).id, v1.id);
    assert.equal((await ensureActivePolicy(handle.db, { stateDir: dir }, silent)).id, v1.id, 'without CHECKPOINT the active version stays');

    const b = join(dir, 'b');
    await cp(a, b, { recursive: true });
    const v2 = await ensureActivePolicy(handle.db, { checkpoint: b, stateDir: dir }, silent);
    assert.notEqual(v2.id, v1.id);
    assert.equal(v2.parent_id, v1.id);
    assert.equal((await getActiveModelVersion(handle.db, 'policy'))?.id, v2.id);
    assert.equal((await listModelVersions(handle.db)).find((v) => v.id === v1.id)?.status, 'retired');
  });

  test('a path that is not a checkpoint is refused with a message', async () => {
    await writeFile(join(dir, 'file.txt'), 'x');
    await assert.rejects(ensureActivePolicy(handle.db, { checkpoint: dir, stateDir: dir }, silent), /not a checkpoint: cannot read meta.json/);
  });

});

describe('npm start', () => {
  const start = (args: string[], env: Record<string, string>) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TFJS_BACKEND: process.env.TFJS_BACKEND ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    void exited.then(() => clearTimeout(timer));
    return { child, exited, output: () => out };
  };

  test('an invalid configuration exits 2 naming the variable', async () => {
    const run = start(['--port', 'x'], {});
    assert.equal(await run.exited, 2);
    assert.match(run.output(), /PORT="x": must be an integer/);
  });

  test('serves /health, stops gracefully on SIGTERM, and a database it cannot reach stops start-up', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'npm-start-'));
    const state = join(parent, 'state');
    try {
      const run = start([], { PORT: '0', STATE_DIR: state, CHECKPOINT: await tinyCheckpoint(), LOG_LEVEL: 'info' });
      const url = await new Promise<string>((resolve, reject) => {
        const poll = setInterval(() => {
          const m = /listening on (http:\/\/[\d.:]+)/.exec(run.output());
          if (m) {
            clearInterval(poll);
            resolve(m[1]);
          }
        }, 50);
        void run.exited.then((code) => {
          clearInterval(poll);
          reject(new Error(`exited ${code}: ${run.output()}`));
        });
      });
      const health = (await (await fetch(`${url}/health`)).json()) as { ready: boolean; database: { kind: string } };
      assert.deepEqual([health.ready, health.database.kind], [true, 'pglite']);
      assert.match(run.output(), /Admin token \(shown once/);
      const { token } = (await (await fetch(`${url}/api/session`, { method: 'POST' })).json()) as { token: string };
      const reply = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) });
      assert.equal(reply.status, 200);
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0);
      assert.match(run.output(), /"msg":"stopped"/);

      // Private state: the directory 0700, nothing in it (database, WAL, admin token) open to group or others.
      assert.equal((await stat(state)).mode & 0o777, 0o700);
      const loose: string[] = [];
      let files = 0;
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true })) {
          const path = join(dir, entry.name);
          const mode = (await lstat(path)).mode & 0o777;
          if (entry.isSymbolicLink()) continue;
          if ((mode & 0o077) !== 0) loose.push(`${path} ${mode.toString(8)}`);
          if (entry.isDirectory()) await walk(path);
          else files += 1;
        }
      };
      await walk(state);
      assert.ok(files > 100, `the embedded database was written (${files} files)`);
      assert.deepEqual(loose, []);
      assert.equal((await stat(join(state, 'admin-token'))).mode & 0o777, 0o600);

      const bad = start([], { PORT: '0', STATE_DIR: state, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      assert.equal(await bad.exited, 1);
      assert.match(bad.output(), /start-up failed: cannot connect to PostgreSQL/);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
