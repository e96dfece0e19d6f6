/** The A/B comparison in a thread: two replies to one message side by side, and the verdict buttons. */
import type { Choice, WireMessage } from '../../../server/protocol.ts';
import { h, syncChildren } from '../shared/dom.ts';
import type { Thread } from './thread.ts';

export interface Comparison {
  thread: Thread;
  user: WireMessage;
  a: WireMessage;
  b: WireMessage;
  choice: Choice | null;
}

const CHOICES: { choice: Choice; label: string }[] = [
  { choice: 'a', label: 'A is better' },
  { choice: 'b', label: 'B is better' },
  { choice: 'tie', label: 'Tie' },
  { choice: 'both_bad', label: 'Both bad' },
];

const built = new WeakMap<Comparison, { el: HTMLElement; verdict: HTMLElement; buttons: HTMLButtonElement[] }>();

/**
 * The block of comparison `c` (built once, then updated): `sides` are the elements of replies A and
 * B; the verdict buttons wait until both replies are stored and finished, and call `onChoose`.
 */
export function compareBlock(c: Comparison, sides: HTMLElement[], isStreaming: (m: WireMessage) => boolean, onChoose: (c: Comparison, choice: Choice) => void): HTMLElement {
  let parts = built.get(c);
  if (!parts) {
    const buttons = CHOICES.map(({ choice, label }) => h('button', { type: 'button', onclick: () => onChoose(c, choice) }, label));
    const verdict = h('p', { class: 'verdict', role: 'status' });
    const el = h('div', { class: 'compare', role: 'group', 'aria-label': 'Compare replies' }, h('div', { class: 'sides' }), h('div', { class: 'choices' }, ...buttons), verdict);
    parts = { el, verdict, buttons };
    built.set(c, parts);
  }
  syncChildren(parts.el.querySelector('.sides')!, sides);
  const ready = c.a.id > 0 && c.b.id > 0 && !isStreaming(c.a) && !isStreaming(c.b);
  for (const b of parts.buttons) b.disabled = !ready || c.choice !== null;
  parts.verdict.textContent = c.choice ? `Recorded: ${CHOICES.find((x) => x.choice === c.choice)!.label}. Thank you!` : ready ? 'Which reply is better?' : '';
  return parts.el;
}
