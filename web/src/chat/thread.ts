/**
 * A conversation's message tree on the page: every message by id, children per parent, and which
 * child is shown for each parent (the newest unless the user switched with ‹ ›). Messages not yet
 * stored by the server have negative ids until their `start` frame names them.
 */
import type { WireMessage } from '../../../server/protocol.ts';

const ROOT = 0;

export class Thread {
  readonly messages = new Map<number, WireMessage>();
  private readonly children = new Map<number, number[]>();
  private readonly selected = new Map<number, number>();
  private nextTemp = -1;

  constructor(
    public conversationId: number | null = null,
    messages: WireMessage[] = [],
  ) {
    for (const m of messages) this.add(m);
  }

  add(m: WireMessage): void {
    this.messages.set(m.id, m);
    const parent = m.parent_id ?? ROOT;
    const list = this.children.get(parent) ?? [];
    if (!list.includes(m.id)) list.push(m.id);
    this.children.set(parent, list);
  }

  /** A placeholder for a message the server has not stored yet. */
  addPending(role: 'user' | 'assistant', parentId: number | null, content = ''): WireMessage {
    const m: WireMessage = {
      id: this.nextTemp--,
      parent_id: parentId,
      role,
      content,
      created_at: new Date().toISOString(),
      model_version: null,
      finish_reason: null,
      usage: null,
      timings: null,
      decoding: null,
      rating: null,
    };
    this.add(m);
    this.select(m.id);
    return m;
  }

  update(id: number, patch: Partial<WireMessage>): WireMessage | undefined {
    const m = this.messages.get(id);
    if (m) Object.assign(m, patch);
    return m;
  }

  /** Gives a pending message its stored id (and its children their parent's). */
  rename(tempId: number, id: number): void {
    const m = this.messages.get(tempId);
    if (!m || tempId === id) return;
    this.messages.delete(tempId);
    m.id = id;
    this.messages.set(id, m);
    const siblings = this.children.get(m.parent_id ?? ROOT) ?? [];
    siblings[siblings.indexOf(tempId)] = id;
    for (const [parent, child] of this.selected) if (child === tempId) this.selected.set(parent, id);
    const kids = this.children.get(tempId);
    if (kids) {
      this.children.delete(tempId);
      this.children.set(id, kids);
      for (const k of kids) this.messages.get(k)!.parent_id = id;
      const sel = this.selected.get(tempId);
      this.selected.delete(tempId);
      if (sel !== undefined) this.selected.set(id, sel);
    }
  }

  /** Moves a pending message under another parent (its user message got its stored id). */
  reparent(id: number, parentId: number | null): void {
    const m = this.messages.get(id);
    if (!m || m.parent_id === parentId) return;
    this.remove(id);
    m.parent_id = parentId;
    this.add(m);
    this.select(id);
  }

  remove(id: number): void {
    const m = this.messages.get(id);
    if (!m) return;
    this.messages.delete(id);
    const parent = m.parent_id ?? ROOT;
    const list = (this.children.get(parent) ?? []).filter((c) => c !== id);
    this.children.set(parent, list);
    if (this.selected.get(parent) === id) this.selected.delete(parent);
  }

  /** Shows message `id` (and so its branch). */
  select(id: number): void {
    const m = this.messages.get(id);
    if (m) this.selected.set(m.parent_id ?? ROOT, id);
  }

  siblings(id: number): number[] {
    const m = this.messages.get(id);
    return m ? (this.children.get(m.parent_id ?? ROOT) ?? []) : [];
  }

  private shownChild(parent: number): number | undefined {
    const list = this.children.get(parent) ?? [];
    const chosen = this.selected.get(parent);
    return chosen !== undefined && list.includes(chosen) ? chosen : list.at(-1);
  }

  /** The messages shown: from the root down the selected branch. */
  path(): WireMessage[] {
    const out: WireMessage[] = [];
    let next = this.shownChild(ROOT);
    while (next !== undefined) {
      out.push(this.messages.get(next)!);
      next = this.shownChild(next);
    }
    return out;
  }

  /** The newest shown message (what a new user message answers). */
  leaf(): WireMessage | undefined {
    return this.path().at(-1);
  }
}
