/**
 * One message on the page. A user message is its text; an assistant reply is an `article` with its
 * text, the sibling switcher (‹ 2/3 ›), thumbs up / down (toggles; an optional reason after thumbs
 * down), Regenerate, Copy, the model version that wrote it and how it ended. All text goes in as
 * text nodes. `update` changes only what changed, so focus and selection survive streaming.
 */
import type { WireMessage } from '../../../server/protocol.ts';
import { h } from '../shared/dom.ts';
import { icon, type IconName } from '../shared/icons.ts';

export interface ReplyActions {
  rate(m: WireMessage, value: 1 | -1 | 0, reason?: string): void;
  regenerate(m: WireMessage): void;
  copy(m: WireMessage): void;
  switchSibling(m: WireMessage, step: -1 | 1): void;
}

interface ViewState {
  /** 1-based position among its siblings, and how many there are. */
  index: number;
  count: number;
  streaming: boolean;
  /** A generation is running in this conversation (no regenerate meanwhile). */
  busy: boolean;
  /** e.g. "Reply A" in compare mode. */
  label?: string;
  /** One side of an A/B comparison: no sibling switcher or Regenerate (both replies are on screen). */
  inCompare?: boolean;
}

const FINISH_NOTES: Record<string, string> = {
  cancelled: 'Stopped',
  length: 'Cut at the length limit',
  error: 'The reply failed',
  interrupted: 'Interrupted: the server stopped before the reply ended',
};

export class MessageView {
  readonly el: HTMLElement;
  private readonly text = document.createTextNode('');
  private readonly body: HTMLElement;
  private readonly parts: {
    siblings: HTMLElement;
    position: HTMLElement;
    prev: HTMLButtonElement;
    next: HTMLButtonElement;
    up: HTMLButtonElement;
    down: HTMLButtonElement;
    regenerate: HTMLButtonElement;
    copy: HTMLButtonElement;
    version: HTMLElement;
    note: HTMLElement;
    reasonForm: HTMLFormElement;
    reason: HTMLInputElement;
    label: HTMLElement;
  } | null = null;

  constructor(
    private m: WireMessage,
    private readonly actions: ReplyActions,
  ) {
    this.body = h('div', { class: 'body' }, this.text);
    if (m.role !== 'assistant') {
      this.el = h('div', { class: `msg ${m.role}` }, h('span', { class: 'sr-only' }, m.role === 'user' ? 'You said: ' : 'System: '), this.body);
      return;
    }
    const button = (label: string, name: IconName, onclick: () => void, extra: Record<string, string> = {}) =>
      h('button', { type: 'button', class: 'icon', 'aria-label': label, title: label, onclick, ...extra }, icon(name));
    const prev = button('Previous reply', 'prev', () => this.actions.switchSibling(this.m, -1));
    const next = button('Next reply', 'next', () => this.actions.switchSibling(this.m, 1));
    const position = h('span', { class: 'position', 'aria-live': 'polite' });
    const siblings = h('span', { class: 'siblings' }, prev, position, next);
    const up = button('Thumbs up', 'thumbsUp', () => this.actions.rate(this.m, this.m.rating === 1 ? 0 : 1), { 'aria-pressed': 'false' });
    const down = button('Thumbs down', 'thumbsDown', () => this.onThumbsDown(), { 'aria-pressed': 'false' });
    const regenerate = button('Regenerate', 'regenerate', () => this.actions.regenerate(this.m));
    const copy = button('Copy', 'copy', () => this.actions.copy(this.m));
    const version = h('span', { class: 'version' });
    const note = h('span', { class: 'note' });
    const reason = h('input', { type: 'text', maxlength: 1000, 'aria-label': 'What was wrong? (optional)', placeholder: 'What was wrong? (optional)' });
    const reasonForm = h(
      'form',
      { class: 'reason', hidden: true },
      reason,
      h('button', { type: 'submit' }, 'Send reason'),
      h('button', { type: 'button', class: 'secondary', onclick: () => (reasonForm.hidden = true) }, 'Skip'),
    );
    reasonForm.addEventListener('submit', (e) => {
      e.preventDefault();
      reasonForm.hidden = true;
      if (reason.value.trim()) this.actions.rate(this.m, -1, reason.value.trim());
    });
    const label = h('span', { class: 'reply-label' });
    this.parts = { siblings, position, prev, next, up, down, regenerate, copy, version, note, reasonForm, reason, label };
    this.el = h(
      'article',
      { class: 'msg assistant', role: 'article', 'aria-label': 'Reply' },
      label,
      this.body,
      h('div', { class: 'actions' }, siblings, up, down, regenerate, copy, version, note),
      reasonForm,
    );
  }

  private onThumbsDown(): void {
    if (this.m.rating === -1) {
      this.actions.rate(this.m, 0);
      this.parts!.reasonForm.hidden = true;
      return;
    }
    this.actions.rate(this.m, -1);
    this.parts!.reason.value = '';
    this.parts!.reasonForm.hidden = false;
    this.parts!.reason.focus();
  }

  update(m: WireMessage, s: ViewState): this {
    this.m = m;
    if (this.text.data !== m.content) this.text.data = m.content;
    const p = this.parts;
    if (!p) return this;
    const stored = m.id > 0;
    const canAct = stored && !s.streaming;
    this.el.setAttribute('aria-busy', String(s.streaming));
    this.el.classList.toggle('streaming', s.streaming);
    this.el.setAttribute('aria-label', s.label ?? 'Reply');
    p.label.textContent = s.label ?? '';
    p.label.hidden = !s.label;
    p.siblings.hidden = s.count < 2 || !!s.inCompare;
    p.regenerate.hidden = !!s.inCompare;
    p.position.textContent = `${s.index}/${s.count}`;
    p.prev.disabled = s.index <= 1;
    p.next.disabled = s.index >= s.count;
    p.up.setAttribute('aria-pressed', String(m.rating === 1));
    p.down.setAttribute('aria-pressed', String(m.rating === -1));
    p.up.disabled = p.down.disabled = !canAct;
    p.regenerate.disabled = !canAct || s.busy;
    p.copy.disabled = s.streaming;
    p.version.textContent = m.model_version !== null ? `model v${m.model_version}` : '';
    const note = s.streaming ? (m.content ? '' : 'Thinking…') : (m.finish_reason && FINISH_NOTES[m.finish_reason]) || '';
    p.note.textContent = note;
    if (!canAct) p.reasonForm.hidden = true;
    return this;
  }
}
