// The chat page and the dashboard in a real browser: Debian's Chromium driven by playwright-core,
// against a real server (tiny trained model, in-memory PGlite) serving the built web/dist.
// Screenshots go to .state/artifacts/web/ (git-ignored).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Dialog, type Locator, type Page } from 'playwright-core';
import { loadConfig } from '../server/config.ts';
import { insertModelVersion } from '../db/index.ts';
import { readCheckpointIdentity } from '../server/initial-policy.ts';
import type { ConversationDetail } from '../server/protocol.ts';
import { createServer, type RunningServer } from '../server/server.ts';
import { buildWeb } from '../web/build.ts';
import { SocketRelay } from './helpers/socket-relay.ts';
import { ADMIN_TOKEN, databaseTargets, startTestServer, tinyCheckpoint, type TestServer } from './helpers/server-harness.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../.state/artifacts/web/', import.meta.url));
const ENV = { MAX_NEW_TOKENS: '1024', MAX_INFLIGHT_PER_SESSION: '8' };
const XSS = '<img src=x onerror=alert(1)>';

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH to run the browser tests`;

/** Polls `fn` until it returns something other than undefined/false. */
async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the server (the database stays open) and starts a new one on the same port over it. */
async function restart(t: TestServer, current: RunningServer): Promise<RunningServer> {
  await current.close();
  const env = { PORT: String(current.port), STATE_DIR: t.stateDir, CHECKPOINT: await tinyCheckpoint(), ADMIN_TOKEN, LOG_LEVEL: 'silent', SHUTDOWN_GRACE_MS: '0', RATE_LIMIT_PER_MINUTE: '10000', TFJS_BACKEND: process.env.TFJS_BACKEND ?? '', ...ENV };
  return createServer(loadConfig({ env }), { database: t.database });
}

describe('web pages in Chromium', { skip }, () => {
  let t: TestServer;
  let server: RunningServer;
  let context: BrowserContext;
  let profile: string;
  let page: Page;
  let relay: SocketRelay;
  let dash: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];

  const thread = () => page.getByRole('region', { name: 'Conversation' });
  const replies = () => thread().getByRole('article');
  const button = (name: string, p: Page = page) => p.getByRole('button', { name, exact: true });
  const conversationId = () => Number(/#c=(\d+)/.exec(page.url())?.[1]);
  const conversation = () => page.evaluate(async (id) => (await (await fetch(`/api/conversations/${id}`)).json()) as ConversationDetail, conversationId());

  async function send(text: string): Promise<void> {
    await page.getByLabel('Message').fill(text);
    await page.getByLabel('Message').press('Enter');
  }

  /** No generation running: after the page's pending render (two frames), the thread is not busy and Send is back. */
  async function idle(p: Page = page): Promise<void> {
    await p.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    const region = p.getByRole('region', { name: 'Conversation' });
    await until(async () => (await region.getAttribute('aria-busy')) === 'false' && (await button('Send', p).isVisible()), 'the replies to finish', 60_000);
  }

  /** Waits for a toggle button's state (the page renders on the next frame). */
  async function pressed(toggle: Locator, want: boolean): Promise<void> {
    await until(async () => (await toggle.getAttribute('aria-pressed')) === String(want), `aria-pressed=${want}`, 5000);
  }

  async function pairsOnDashboard(): Promise<number> {
    await button('Refresh', dash).click();
    return Number(await dash.getByTestId('pairs-total').textContent());
  }

  function track(p: Page): Page {
    p.on('dialog', (d: Dialog) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    p.on('pageerror', (e) => pageErrors.push(e.message));
    return p;
  }

  before(async () => {
    await buildWeb({ quiet: true });
    t = await startTestServer(databaseTargets()[0], ENV);
    server = t.server;
    await mkdir(ARTIFACTS, { recursive: true });
    profile = await mkdtemp(join(tmpdir(), 'chromium-profile-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      viewport: { width: 1280, height: 800 },
    });
    page = track(context.pages()[0] ?? (await context.newPage()));
    relay = await SocketRelay.attach(page, /\/ws\?/);
    await page.goto(t.url);
    await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
  });

  // A test that fails while frames are held must not leave the next one waiting on them.
  afterEach(() => {
    relay?.release('to_server');
    relay?.release('to_page');
  });

  after(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    if (server && server !== t?.server) await server.close();
    await t?.close();
  });

  test('Enter sends and Shift+Enter adds a line; the reply streams into an article with Stop shown meanwhile, matches what is stored, and Copy copies it', async () => {
    const box = page.getByLabel('Message');
    await box.fill('first line');
    await box.press('Shift+Enter');
    await box.pressSequentially('second line');
    assert.equal(await box.inputValue(), 'first line\nsecond line');
    assert.equal(await replies().count(), 0);

    // The reply's frames after its first piece of text wait in the relay, so the page is seen with
    // the reply half-written, whatever the machine's load; then they go on to the page.
    let deltas = 0;
    relay.hold('to_page', (f) => f.type === 'delta' && ++deltas > 1);
    await send('The game was');
    await until(async () => (await replies().count()) === 1, 'the reply on the page');
    const body = replies().last().locator('.body');
    const partial = await until(async () => (await body.textContent()) || false, 'the first words of the reply');
    assert.equal(await replies().last().getAttribute('aria-busy'), 'true');
    assert.ok(await button('Stop').isVisible(), 'Stop is shown while the reply is written');
    assert.equal(await button('Send').isVisible(), false);
    relay.release('to_page');
    await idle();
    const whole = (await body.textContent())!;
    assert.ok(whole.length > partial.length && whole.startsWith(partial), `the reply grew from ${JSON.stringify(partial)} to ${JSON.stringify(whole)}`);

    await thread().getByText('The game was', { exact: true }).waitFor();
    const stored = await conversation();
    const reply = stored.messages.find((m) => m.role === 'assistant')!;
    assert.equal(await replies().last().locator('.body').textContent(), reply.content);
    await replies().last().getByText(`model v${reply.model_version}`).waitFor();

    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
    await replies().last().getByRole('button', { name: 'Copy', exact: true }).click();
    await page.getByText('Copied the reply to the clipboard.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), reply.content);
  });

  test('Stop ends a long generation (stored as cancelled); decoding settings are remembered after a reload', async () => {
    await button('Settings').click();
    await page.getByLabel('Strategy').selectOption('greedy');
    await page.getByLabel('Max new tokens').fill('1024');
    await page.getByLabel('Repetition penalty').fill('1.2');
    await button('Settings').click();

    // The tiny model writes all 1024 tokens in a few hundred milliseconds, less than a busy machine
    // may leave the browser waiting. So the relay keeps the chat frame until Stop's cancel frame is
    // behind it, sends the chat, and sends the cancel once the server has streamed the reply's first
    // text: Stop lands while the reply is being written, as when a user presses it mid-reply.
    relay.hold('to_server', (f) => f.type === 'chat');
    await send('The history of');
    await button('Stop').click();
    await until(() => relay.heldCount('to_server') === 2, 'the chat and cancel frames to reach the relay', 10_000);
    const firstText = relay.next('to_page', (f) => f.type === 'delta');
    relay.release('to_server', 1);
    await firstText;
    relay.release('to_server');
    const last = replies().last();
    await idle();
    await last.getByText('Stopped').waitFor();
    const stored = await conversation();
    const reply = stored.messages.filter((m) => m.role === 'assistant').at(-1)!;
    assert.equal(reply.finish_reason, 'cancelled');
    assert.ok(reply.usage!.completion_tokens > 0 && reply.usage!.completion_tokens < 1024, `${reply.usage!.completion_tokens} tokens written`);
    assert.ok(reply.content.length > 0);
    assert.equal(await last.locator('.body').textContent(), reply.content);

    await page.reload();
    await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
    await until(async () => (await replies().count()) === 2, 'the conversation to load again');
    await button('Settings').click();
    assert.equal(await page.getByLabel('Strategy').inputValue(), 'greedy');
    assert.equal(await page.getByLabel('Max new tokens').inputValue(), '1024');
    await page.getByLabel('Strategy').selectOption('sample');
    await page.getByLabel('Max new tokens').fill('24');
    await button('Settings').click();
  });

  test('Regenerate adds a sibling reply and ‹ › switch between the siblings', async () => {
    const last = replies().last();
    const first = await last.locator('.body').textContent();
    await last.getByRole('button', { name: 'Regenerate', exact: true }).click();
    await last.getByText('2/2').waitFor();
    await idle();
    const second = await last.locator('.body').textContent();
    await last.getByRole('button', { name: 'Previous reply' }).click();
    await last.getByText('1/2').waitFor();
    assert.equal(await last.locator('.body').textContent(), first);
    await last.getByRole('button', { name: 'Next reply' }).click();
    await last.getByText('2/2').waitFor();
    assert.equal(await last.locator('.body').textContent(), second);
    const stored = await conversation();
    const assistants = stored.messages.filter((m) => m.role === 'assistant');
    assert.equal(assistants.at(-1)!.parent_id, assistants.at(-2)!.parent_id, 'siblings share the user message');
  });

  test('thumbs up / down toggle, thumbs down takes a reason, and the pair count on the dashboard follows', async () => {
    dash = track(await context.newPage());
    await dash.goto(`${t.url}/dashboard`);
    await dash.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await button('Open dashboard', dash).click();
    await until(async () => (await dash.getByTestId('pairs-total').textContent()) !== '–', 'the dashboard to load');
    const before = await pairsOnDashboard();

    const last = replies().last();
    const up = last.getByRole('button', { name: 'Thumbs up', exact: true });
    const down = last.getByRole('button', { name: 'Thumbs down', exact: true });
    await up.click();
    await pressed(up, true);
    await last.getByRole('button', { name: 'Previous reply' }).click();
    await last.getByText('1/2').waitFor();
    await pressed(up, false);
    await down.click();
    await pressed(down, true);
    await last.getByLabel('What was wrong? (optional)').fill('It stopped half way');
    await last.getByRole('button', { name: 'Send reason', exact: true }).click();
    await until(async () => (await pairsOnDashboard()) === before + 1, 'one more pair on the dashboard');

    const messageId = (await conversation()).messages.filter((m) => m.role === 'assistant').at(-2)!.id;
    const rating = await t.database.db.selectFrom('ratings').select(['value', 'reason']).where('message_id', '=', messageId).executeTakeFirst();
    assert.deepEqual(rating, { value: -1, reason: 'It stopped half way' });

    await down.click(); // toggles the rating off: no pair any more
    await pressed(down, false);
    await until(async () => (await pairsOnDashboard()) === before, 'the pair to go');
    await down.click();
    await last.getByRole('button', { name: 'Skip', exact: true }).click();
    await until(async () => (await pairsOnDashboard()) === before + 1, 'the pair to come back');
    await page.screenshot({ path: join(ARTIFACTS, 'chat.png') });
  });

  test('A/B compare shows two replies side by side; the vote is recorded as a compare pair', async () => {
    const before = await pairsOnDashboard();
    await button('New chat').click();
    await page.getByLabel('A/B compare').check();
    await page.getByLabel('A/B sides').selectOption({ label: 'Greedy vs beam search' });
    await send('The river');
    await page.getByRole('article', { name: 'Reply A' }).waitFor();
    await page.getByRole('article', { name: 'Reply B' }).waitFor();
    await until(async () => (await button('B is better').isEnabled()) && (await button('A is better').isEnabled()), 'both replies to finish', 60_000);
    await page.screenshot({ path: join(ARTIFACTS, 'chat-compare.png') });
    await button('B is better').click();
    await page.getByText('Recorded: B is better').waitFor();
    await until(async () => (await pairsOnDashboard()) === before + 1, 'the compare pair on the dashboard');
    assert.match((await dash.locator('#pairs-sources').textContent()) ?? '', /compare 1/);
    await page.getByLabel('A/B compare').uncheck();
  });

  test('a refused request is explained in plain words, and the message goes back into the box', async () => {
    await button('New chat').click();
    await button('Settings').click();
    await page.getByLabel('Strategy').selectOption('beam_search');
    await page.getByLabel('Beam width').fill('12');
    await button('Settings').click();
    await send('Hello');
    await page.getByRole('alert').getByText(/The server refused the request: .*beam_width must be at most 8/).waitFor();
    await until(async () => (await page.getByLabel('Message').inputValue()) === 'Hello', 'the message to come back');
    assert.equal(await replies().count(), 0);
    await page.getByRole('alert').getByRole('button', { name: 'Dismiss' }).click();
    await button('Settings').click();
    await page.getByLabel('Beam width').fill('4');
    await page.getByLabel('Strategy').selectOption('sample');
    await button('Settings').click();
    await page.getByLabel('Message').fill('');
  });

  test('a reply or message containing HTML is shown as text and never run', async () => {
    await button('New chat').click();
    await send(XSS);
    await idle();
    await thread().getByText(XSS, { exact: true }).waitFor();

    // A stored reply with markup in it, as the page loads it.
    const reply = (await conversation()).messages.find((m) => m.role === 'assistant')!;
    const markup = `${XSS} and <script>alert(2)</script><b>bold?</b>`;
    await t.database.db.updateTable('messages').set({ content: markup }).where('id', '=', reply.id).execute();
    await page.reload();
    await replies().last().getByText(markup, { exact: true }).waitFor();

    // A streamed reply with markup in its deltas (the frames rewritten on their way to the page).
    const other = track(await context.newPage());
    await other.routeWebSocket(/\/ws/, (ws) => {
      const upstream = ws.connectToServer();
      let injected = false;
      upstream.onMessage((data) => {
        const frame = JSON.parse(String(data)) as { type: string; text?: string };
        if (frame.type === 'delta' && !injected) {
          frame.text = XSS + frame.text;
          injected = true;
        }
        if (frame.type === 'done') frame.text = XSS + frame.text;
        ws.send(JSON.stringify(frame));
      });
      ws.onMessage((data) => upstream.send(data));
    });
    await other.goto(t.url);
    await other.getByLabel('Message').fill('Hello there');
    await other.getByLabel('Message').press('Enter');
    const streamed = other.getByRole('region', { name: 'Conversation' }).getByRole('article').last();
    await until(async () => ((await streamed.locator('.body').textContent()) ?? '').startsWith(XSS), 'the injected delta');
    await idle(other);
    for (const p of [page, other]) {
      assert.equal(await p.locator('#thread img, #thread script, #thread b').count(), 0, 'no element made from the text');
    }
    assert.deepEqual(dialogs, [], 'no dialog fired');
    await other.close();
  });

  test('activating a version on the dashboard announces it on the chat page; roll back returns to the previous one', async () => {
    const checkpoint = await tinyCheckpoint();
    const { sha256 } = await readCheckpointIdentity(checkpoint);
    const db = t.database.db;
    const serving = server.deps.models.current!.id;
    // Versions as the training loop records them, so that the charts and the table have something to show.
    for (const [i, accuracy] of [0.58, 0.66, 0.71].entries()) {
      await insertModelVersion(db, { kind: 'reward', checkpointPath: `/models/reward-${i}`, sha256: sha256, status: i < 2 ? 'retired' : 'candidate', metrics: { accuracy } });
    }
    await insertModelVersion(db, { kind: 'policy', parentId: serving, checkpointPath: '/models/policy-rejected', sha256, status: 'rejected', reasons: ['KL to the reference 9.40 nats exceeds 6'], metrics: { ppo_reward: 0.12, ppo_kl: 9.4 } });
    const candidate = await insertModelVersion(db, { kind: 'policy', parentId: serving, checkpointPath: checkpoint, sha256, metrics: { ppo_reward: 0.31, ppo_kl: 1.8, gate_reward: 0.29 } });

    await button('Refresh', dash).click();
    await button(`Activate v${candidate.id}`, dash).click();
    await page.getByText(`Model v${candidate.id} now answers new messages.`).waitFor();
    await send('The station');
    await idle();
    await replies().last().getByText(`model v${candidate.id}`).waitFor();
    await dash.getByRole('row', { name: /^v\d+ policy rejected/ }).getByText('KL to the reference 9.40 nats exceeds 6').waitFor();
    await dash.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await button('Roll back to the previous policy', dash).click();
    await page.getByText(`Model v${serving} now answers new messages.`).waitFor();
    assert.equal(server.deps.models.current!.id, serving);
  });

  test('after a server restart the page reconnects by itself and the conversation goes on', async () => {
    const titles = await page.locator('#conversation-list .open').allTextContents();
    const status = page.locator('#conn');
    server = await restart(t, server);
    await until(async () => (await status.textContent()) === 'Connected' && (await status.getAttribute('data-status')) === 'open', 'the page to reconnect', 60_000);
    await send('Are you back?');
    await idle();
    assert.equal((await replies().last().getAttribute('aria-busy')), 'false');
    assert.ok((await replies().last().locator('.body').textContent())!.length > 0);
    const after = await page.locator('#conversation-list .open').allTextContents();
    for (const title of titles) assert.ok(after.includes(title), `conversation "${title}" is still listed`);
  });

  test('on a phone-sized screen nothing scrolls sideways and the conversation list is a drawer', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    const drawer = page.getByRole('button', { name: 'Conversations' });
    await drawer.click();
    assert.equal(await drawer.getAttribute('aria-expanded'), 'true');
    await button('New chat').waitFor();
    await page.keyboard.press('Escape');
    assert.equal(await drawer.getAttribute('aria-expanded'), 'false');
    await page.screenshot({ path: join(ARTIFACTS, 'chat-phone.png') });
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the pages');
  });
});
