// The web client's library (web/client) from Node against a real server (tiny model, in-memory
// PGlite), over the `ws` package: streaming, cancel, regenerate + ratings, A/B, REST, reconnect, and
// the README's Node example run as written.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { loadConfig } from '../server/config.ts';
import { createServer, type RunningServer } from '../server/server.ts';
import { AdminClient, ChatClient, ChatError, type ConnectionStatus } from '../web/client/index.ts';
import { ADMIN_TOKEN, databaseTargets, startTestServer, tinyCheckpoint, type TestServer } from './helpers/server-harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENV = { MAX_NEW_TOKENS: '1024', MAX_INFLIGHT_PER_SESSION: '8' };

/** Stops the server (the database stays open) and starts a new one on the same port over it. */
async function restart(t: TestServer, current: RunningServer): Promise<RunningServer> {
  await current.close();
  const config = loadConfig({
    env: {
      PORT: String(current.port),
      STATE_DIR: t.stateDir,
      CHECKPOINT: await tinyCheckpoint(),
      ADMIN_TOKEN,
      LOG_LEVEL: 'silent',
      SHUTDOWN_GRACE_MS: '0',
      RATE_LIMIT_PER_MINUTE: '10000',
      TFJS_BACKEND: process.env.TFJS_BACKEND ?? '',
      ...ENV,
    },
  });
  return createServer(config, { database: t.database });
}

function waitForStatus(client: ChatClient, want: ConnectionStatus, timeoutMs = 30_000): Promise<void> {
  if (client.status === want) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`status stayed ${client.status}, wanted ${want}`)), timeoutMs);
    const off = client.on('status', (s) => {
      if (s !== want) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

describe('web client library (Node, ws)', () => {
  let t: TestServer;
  let server: RunningServer;
  let client: ChatClient;

  before(async () => {
    t = await startTestServer(databaseTargets()[0], ENV);
    server = t.server;
    client = await ChatClient.connect({ url: t.url, WebSocket, reconnect: { minDelayMs: 100, maxDelayMs: 1000 } });
  });
  after(async () => {
    client?.close();
    if (server !== t?.server) await server?.close();
    await t?.close();
  });

  test('connect creates a session and hears the served model version', async () => {
    assert.equal(client.status, 'open');
    assert.ok(client.sessionToken);
    const version = client.modelVersion ?? (await new Promise<number>((resolve) => client.on('model', resolve)));
    assert.equal(version, server.deps.models.current!.id);
  });

  test('chat() iterates deltas that add up to done.text, and the reply is in the conversation', async () => {
    const reply = client.chat('The game was', { decoding: { strategy: 'greedy', max_new_tokens: 24 } });
    const pieces: string[] = [];
    for await (const piece of reply) pieces.push(piece);
    const done = await reply.done;
    const start = await reply.started;
    assert.ok(pieces.length > 1, 'streamed in several pieces');
    assert.equal(pieces.join(''), done.text);
    assert.equal(done.message_id, start.message_id);
    assert.equal(done.model_version, server.deps.models.current!.id);
    const conversations = await client.listConversations();
    assert.ok(conversations.some((c) => c.id === start.conversation_id));
    const detail = await client.getConversation(start.conversation_id);
    assert.deepEqual(
      detail.messages.map((m) => [m.role, m.content]),
      [
        ['user', 'The game was'],
        ['assistant', done.text],
      ],
    );
  });

  test('cancel() ends a long reply with finish_reason "cancelled"', async () => {
    const reply = client.chat('The history of', { decoding: { strategy: 'greedy', max_new_tokens: 1024, repetition_penalty: 1.2 } });
    for await (const piece of reply) {
      if (piece) break;
    }
    reply.cancel();
    const done = await reply.done;
    assert.equal(done.finish_reason, 'cancelled');
    assert.ok(done.usage.completion_tokens < 1024);
  });

  test('regenerate() makes a sibling; opposite ratings of the two make one pair, removing one removes it', async () => {
    const first = client.chat('Once upon a time', { decoding: { max_new_tokens: 12 } });
    const a = await first.done;
    const second = client.regenerate(a.message_id, { decoding: { strategy: 'sample', max_new_tokens: 12, seed: 7 } });
    const b = await second.done;
    assert.equal((await second.started).parent_id, (await first.started).parent_id);
    assert.deepEqual((await client.rate(a.message_id, 1)).pairs, []);
    const rated = await client.rate(b.message_id, -1, 'repeats itself');
    assert.equal(rated.pairs.length, 1);
    assert.deepEqual((await client.rate(b.message_id, 0)).pairs, []);
  });

  test('compare() streams two replies to one prompt; choose() records the pair', async () => {
    const { a, b } = client.compare('The river', { a: { strategy: 'greedy', max_new_tokens: 12 }, b: { strategy: 'beam_search', beam_width: 3, max_new_tokens: 12 } });
    const [da, db] = await Promise.all([a.done, b.done]);
    assert.equal((await a.started).parent_id, (await b.started).parent_id);
    const chosen = await client.choose(da.message_id, db.message_id, 'b');
    assert.equal(chosen.pairs.length, 1);
    const admin = new AdminClient(ADMIN_TOKEN, { url: t.url });
    const lines = (await admin.exportJsonl('pairs')).trim().split('\n').map((l) => JSON.parse(l) as { source: string; chosen_message_id: number });
    assert.ok(lines.some((p) => p.source === 'compare' && p.chosen_message_id === db.message_id));
  });

  test('server errors reject with their code (bad decoding option → bad_request)', async () => {
    const reply = client.chat('Hello', { decoding: { strategy: 'beam_search', beam_width: 999 } });
    await assert.rejects(reply.done, (err: unknown) => err instanceof ChatError && err.code === 'bad_request' && /beam_width/.test(err.message));
    await assert.rejects(async () => {
      for await (const _ of reply) void _;
    }, ChatError);
  });

  test('a server restart: the running reply ends (cancelled or disconnected), the client reconnects by itself and chats on', async () => {
    const reply = client.chat('The city of', { decoding: { strategy: 'greedy', max_new_tokens: 1024, repetition_penalty: 1.2 } });
    await reply.started;
    const statuses: ConnectionStatus[] = [];
    const off = client.on('status', (s) => statuses.push(s));
    server = await restart(t, server);
    // A graceful shutdown cancels running replies before closing sockets; a hard drop fails them.
    const ended = await reply.done.then((d) => d.finish_reason, (err: unknown) => (err instanceof ChatError ? err.code : String(err)));
    assert.ok(ended === 'cancelled' || ended === 'disconnected', ended);
    await waitForStatus(client, 'open');
    off();
    assert.ok(statuses.includes('reconnecting'), statuses.join(','));
    const again = await client.chat('Hello again', { decoding: { max_new_tokens: 8 } }).done;
    assert.ok(again.message_id > 0);
  });

  test("the README's Node example runs as written", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const block = /## Web client[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'README has a ```ts block in its Web client section');
    assert.ok(block.trim().split('\n').length <= 10, 'ten lines at most');
    const script = block
      .replace("'./web/client/index.ts'", `'${pathToFileURL(join(ROOT, 'web/client/index.ts')).href}'`)
      .replace('http://localhost:8080', t.url);
    // Inside the repository, so that `ws` resolves from its node_modules.
    await mkdir(join(ROOT, '.state'), { recursive: true });
    const dir = await mkdtemp(join(ROOT, '.state', 'readme-example-'));
    try {
      const file = join(dir, 'example.mts');
      await writeFile(file, script);
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 });
      assert.match(stdout, /\[model v\d+, (stop|length)\]/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
