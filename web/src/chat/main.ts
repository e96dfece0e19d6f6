/**
 * The chat page: conversation list, the current thread with streaming replies, Stop, ratings,
 * regenerate and sibling switching, A/B compare, decoding settings, connection status and the model
 * version notice. State lives in Thread objects (one per conversation); rendering is coalesced to
 * one pass per animation frame, so long generations never block the page.
 */
import type { Choice, ConversationSummary, WireMessage } from '../../../server/protocol.ts';
import { ChatClient, plainWords, type ReplyStream } from '../../client/index.ts';
import { byId, copyText, h, syncChildren } from '../shared/dom.ts';
import { icon } from '../shared/icons.ts';
import { compareBlock, type Comparison } from './compare-view.ts';
import { MessageView, type ReplyActions } from './message-view.ts';
import { autoGrow, closeSidebarOnPhone, wireControls } from './page-controls.ts';
import { COMPARE_PRESETS, settingsPanel, toDecoding } from './settings.ts';
import { Thread } from './thread.ts';
import '../shared/base.css';
import './chat.css';

const threadEl = byId('thread');
const listEl = byId<HTMLUListElement>('conversation-list');
const input = byId<HTMLTextAreaElement>('message');
const composer = byId<HTMLFormElement>('composer');
const sendBtn = byId<HTMLButtonElement>('send');
const stopBtn = byId<HTMLButtonElement>('stop');
const titleEl = byId('title');
const connEl = byId('conn');
const versionEl = byId('model-version');
const noticeEl = byId('notice');
const alertsEl = byId('alerts');
const announcer = byId('announcer');
const compareToggle = byId<HTMLInputElement>('compare-toggle');
const comparePreset = byId<HTMLSelectElement>('compare-preset');
const settingsEl = byId('settings');

const client = new ChatClient();
const settings = settingsPanel(settingsEl, () => {});

interface Running {
  thread: Thread;
  stream: ReplyStream;
}

let conversations: ConversationSummary[] = [];
const threads = new Map<number, Thread>();
let current = new Thread();
const running = new Set<Running>();
let comparison: Comparison | null = null;
const views = new WeakMap<WireMessage, MessageView>();

// Rendering ----------------------------------------------------------------------------------------

let frame = 0;
function scheduleRender(): void {
  if (frame === 0) frame = requestAnimationFrame(render);
}

const busy = (t: Thread) => [...running].some((r) => r.thread === t);
/** Replies whose generation is running. */
const pendingIds = new WeakSet<WireMessage>();
const isStreaming = (m: WireMessage) => pendingIds.has(m);

function viewFor(m: WireMessage): MessageView {
  let v = views.get(m);
  if (!v) {
    v = new MessageView(m, actions);
    views.set(m, v);
  }
  return v;
}

function render(): void {
  frame = 0;
  const nearBottom = threadEl.scrollHeight - threadEl.scrollTop - threadEl.clientHeight < 80;
  const nodes: HTMLElement[] = [];
  const threadBusy = busy(current);
  for (const m of current.path()) {
    if (comparison && comparison.thread === current && (m === comparison.a || m === comparison.b) && current.messages.get(comparison.a.id) === comparison.a && current.messages.get(comparison.b.id) === comparison.b) {
      const sides = [comparison.a, comparison.b].map((m, i) => viewFor(m).update(m, { index: 1, count: 1, streaming: isStreaming(m), busy: threadBusy, label: i === 0 ? 'Reply A' : 'Reply B', inCompare: true }).el);
      nodes.push(compareBlock(comparison, sides, isStreaming, choose));
      break;
    }
    const sibs = current.siblings(m.id);
    nodes.push(viewFor(m).update(m, { index: sibs.indexOf(m.id) + 1, count: sibs.length, streaming: isStreaming(m), busy: threadBusy }).el);
  }
  if (nodes.length === 0) nodes.push(emptyState);
  syncChildren(threadEl, nodes);
  threadEl.setAttribute('aria-busy', String(threadBusy));
  sendBtn.hidden = threadBusy;
  stopBtn.hidden = !threadBusy;
  const conv = conversations.find((c) => c.id === current.conversationId);
  titleEl.textContent = conv?.title || (current.conversationId === null ? 'New chat' : `Conversation ${current.conversationId}`);
  renderList();
  if (nearBottom) threadEl.scrollTop = threadEl.scrollHeight;
}

const emptyState = h(
  'div',
  { class: 'empty' },
  h('p', {}, 'Ask anything. Rate replies with thumbs up or down: your ratings teach the model.'),
  h('p', { class: 'muted' }, 'Enter sends, Shift+Enter adds a new line.'),
);

function renderList(): void {
  const items = conversations.map((c) => {
    const active = c.id === current.conversationId;
    const open = h('button', { type: 'button', class: 'open', 'aria-current': active ? 'page' : null, onclick: () => void openConversation(c.id) }, c.title || `Conversation ${c.id}`);
    const del = h('button', { type: 'button', class: 'icon delete', 'aria-label': `Delete conversation: ${c.title || c.id}`, title: 'Delete' }, icon('trash'));
    del.addEventListener('click', () => {
      if (del.dataset.confirm) return void deleteConversation(c.id);
      del.dataset.confirm = '1';
      del.textContent = 'Delete?';
      del.setAttribute('aria-label', `Confirm deleting conversation: ${c.title || c.id}`);
      setTimeout(() => renderList(), 4000);
    });
    return h('li', { class: active ? 'active' : null }, open, del);
  });
  listEl.replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No conversations yet')]));
}

// Errors and notices -------------------------------------------------------------------------------

function showError(err: unknown): void {
  const item = h('div', { class: 'alert' }, h('span', {}, plainWords(err)), h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: () => item.remove() }, icon('close')));
  alertsEl.append(item);
  setTimeout(() => item.remove(), 12_000);
}

function showNotice(text: string): void {
  noticeEl.replaceChildren(h('span', {}, text), h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss notice', onclick: () => noticeEl.replaceChildren() }, icon('close')));
}

// Generations --------------------------------------------------------------------------------------

/** Streams `stream` into the pending reply `reply` (and names the pending user message `user`). */
async function follow(t: Thread, stream: ReplyStream, reply: WireMessage, user: WireMessage | null, restore?: string): Promise<void> {
  const r: Running = { thread: t, stream };
  running.add(r);
  pendingIds.add(reply);
  scheduleRender();
  stream.started.then(
    (start) => {
      if (t.conversationId === null) {
        t.conversationId = start.conversation_id;
        threads.set(start.conversation_id, t);
        if (t === current) history.replaceState(null, '', `#c=${start.conversation_id}`);
        void refreshConversations();
      }
      if (user && user.id < 0 && start.parent_id !== null) t.rename(user.id, start.parent_id);
      t.rename(reply.id, start.message_id);
      reply.model_version = start.model_version;
      scheduleRender();
    },
    () => {},
  );
  try {
    for await (const piece of stream) {
      reply.content += piece;
      scheduleRender();
    }
    const done = await stream.done;
    Object.assign(reply, { content: done.text, finish_reason: done.finish_reason, usage: done.usage, model_version: done.model_version, timings: done.timings });
  } catch (err) {
    if (reply.id > 0) {
      reply.finish_reason = 'error';
    } else {
      t.remove(reply.id);
      if (user && user.id < 0 && ![...t.messages.values()].some((m) => m.parent_id === user.id)) {
        t.remove(user.id);
        if (restore !== undefined && !input.value) input.value = restore;
      }
      if (comparison?.a === reply || comparison?.b === reply) comparison = null;
    }
    showError(err);
  } finally {
    running.delete(r);
    pendingIds.delete(reply);
    scheduleRender();
    // Screen readers hear that a reply ended (the streaming text itself is not a live region).
    if (t === current && reply.finish_reason) announcer.textContent = reply.finish_reason === 'cancelled' ? 'Reply stopped.' : reply.finish_reason === 'error' ? 'The reply failed.' : 'Reply complete.';
  }
}

function send(): void {
  const text = input.value;
  if (!text.trim() || busy(current)) return;
  const t = current;
  const leaf = t.leaf();
  const where = t.conversationId === null ? {} : { conversationId: t.conversationId, parentId: leaf?.id ?? null };
  const user = t.addPending('user', leaf?.id ?? null, text);
  input.value = '';
  autoGrow();
  comparison = null;
  if (compareToggle.checked) {
    const preset = COMPARE_PRESETS.find((p) => p.id === comparePreset.value) ?? COMPARE_PRESETS[0];
    const [da, db] = preset.sides(settings.get());
    const a = t.addPending('assistant', user.id);
    const b = t.addPending('assistant', user.id);
    t.select(a.id);
    comparison = { thread: t, user, a, b, choice: null };
    const s = client.compare(text, { a: da, b: db, ...where });
    void follow(t, s.a, a, user, text);
    void follow(t, s.b, b, user, text);
  } else {
    const reply = t.addPending('assistant', user.id);
    void follow(t, client.chat(text, { ...where, decoding: toDecoding(settings.get()) }), reply, user, text);
  }
  scheduleRender();
}

function stop(): void {
  for (const r of running) if (r.thread === current) r.stream.cancel();
}

async function choose(c: Comparison, choice: Choice): Promise<void> {
  try {
    await client.choose(c.a.id, c.b.id, choice);
    c.choice = choice;
    c.thread.select(choice === 'b' ? c.b.id : c.a.id);
  } catch (err) {
    showError(err);
  }
  scheduleRender();
}

const actions: ReplyActions = {
  rate(m, value, reason) {
    const before = m.rating;
    m.rating = value === 0 ? null : value;
    scheduleRender();
    client.rate(m.id, value, reason).catch((err: unknown) => {
      m.rating = before;
      showError(err);
      scheduleRender();
    });
  },
  regenerate(m) {
    if (busy(current)) return;
    const t = current;
    const reply = t.addPending('assistant', m.parent_id);
    void follow(t, client.regenerate(m.id, { decoding: toDecoding(settings.get()) }), reply, null);
  },
  copy(m) {
    copyText(m.content).then(
      () => showNotice('Copied the reply to the clipboard.'),
      (err: unknown) => showError(err),
    );
  },
  switchSibling(m, step) {
    const sibs = current.siblings(m.id);
    const next = sibs[sibs.indexOf(m.id) + step];
    if (next !== undefined) current.select(next);
    scheduleRender();
  },
};

// Conversations ------------------------------------------------------------------------------------

async function refreshConversations(): Promise<void> {
  try {
    conversations = await client.listConversations();
  } catch (err) {
    showError(err);
  }
  scheduleRender();
}

async function openConversation(id: number, { reload = false } = {}): Promise<void> {
  closeSidebarOnPhone();
  let t = threads.get(id);
  if (!t || (reload && !busy(t))) {
    try {
      const detail = await client.getConversation(id);
      t = new Thread(id, detail.messages);
      threads.set(id, t);
    } catch (err) {
      showError(err);
      if (!reload) newChat();
      return;
    }
  }
  if (current !== t && comparison?.thread !== t) comparison = null;
  current = t;
  history.replaceState(null, '', `#c=${id}`);
  scheduleRender();
}

function newChat(): void {
  closeSidebarOnPhone();
  current = new Thread();
  comparison = null;
  history.replaceState(null, '', location.pathname);
  scheduleRender();
  input.focus();
}

async function deleteConversation(id: number): Promise<void> {
  try {
    await client.deleteConversation(id);
    threads.delete(id);
    conversations = conversations.filter((c) => c.id !== id);
    if (current.conversationId === id) newChat();
  } catch (err) {
    showError(err);
  }
  scheduleRender();
}

// Connection ---------------------------------------------------------------------------------------

const STATUS_TEXT = { idle: 'Offline', connecting: 'Connecting…', open: 'Connected', reconnecting: 'Reconnecting…', closed: 'Offline' } as const;
let wasOpen = false;
let lastVersion: number | null = null;

client.on('status', (s) => {
  connEl.textContent = STATUS_TEXT[s];
  connEl.dataset.status = s;
  composer.dataset.status = s;
  if (s === 'open') {
    if (wasOpen) {
      // Back after a drop: replies cut by it were stored by the server; show them as stored.
      void refreshConversations();
      if (current.conversationId !== null) void openConversation(current.conversationId, { reload: true });
    }
    wasOpen = true;
  }
});
client.on('model', (v) => {
  versionEl.textContent = `model v${v}`;
  if (lastVersion !== null && v !== lastVersion) showNotice(`Model v${v} now answers new messages.`);
  lastVersion = v;
});
client.on('session', () => {
  threads.clear();
  if (wasOpen) newChat();
  void refreshConversations();
});
client.on('error', (err) => showError(err));
window.addEventListener('online', () => client.reconnectNow());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') client.reconnectNow();
});

wireControls({ send, stop, newChat });

// Start --------------------------------------------------------------------------------------------

client.start();
void (async () => {
  await refreshConversations();
  const id = Number(/^#c=(\d+)$/.exec(location.hash)?.[1]);
  if (id > 0) await openConversation(id);
  else scheduleRender();
})();
scheduleRender();
input.focus();
