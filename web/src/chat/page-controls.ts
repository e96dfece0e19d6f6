/**
 * The page's controls: the composer (Enter sends, Shift+Enter a new line, it grows with its text),
 * Stop, New chat, the settings panel, the sidebar on phones, the A/B toggle, and Escape.
 */
import { byId, h } from '../shared/dom.ts';
import { icon } from '../shared/icons.ts';
import { COMPARE_PRESETS } from './settings.ts';

const input = byId<HTMLTextAreaElement>('message');
const composer = byId<HTMLFormElement>('composer');
const stopBtn = byId<HTMLButtonElement>('stop');
const compareToggle = byId<HTMLInputElement>('compare-toggle');
const comparePreset = byId<HTMLSelectElement>('compare-preset');
const settingsBtn = byId<HTMLButtonElement>('toggle-settings');
const settingsEl = byId('settings');
const sidebarBtn = byId<HTMLButtonElement>('toggle-sidebar');
const sidebarEl = byId('sidebar');

export function autoGrow(): void {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

export function closeSidebarOnPhone(): void {
  sidebarEl.classList.remove('open');
  sidebarBtn.setAttribute('aria-expanded', 'false');
}

/** Wires the controls to the page's actions. */
export function wireControls({ send, stop, newChat }: { send: () => void; stop: () => void; newChat: () => void }): void {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener('input', autoGrow);
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  stopBtn.addEventListener('click', stop);
  byId('new-chat').addEventListener('click', newChat);
  settingsBtn.addEventListener('click', () => {
    settingsEl.hidden = !settingsEl.hidden;
    settingsBtn.setAttribute('aria-expanded', String(!settingsEl.hidden));
    if (!settingsEl.hidden) settingsEl.querySelector<HTMLElement>('select, input')?.focus();
  });
  sidebarBtn.addEventListener('click', () => {
    const open = sidebarEl.classList.toggle('open');
    sidebarBtn.setAttribute('aria-expanded', String(open));
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (!settingsEl.hidden) {
      settingsEl.hidden = true;
      settingsBtn.setAttribute('aria-expanded', 'false');
      settingsBtn.focus();
    }
    closeSidebarOnPhone();
  });
  comparePreset.replaceChildren(...COMPARE_PRESETS.map((p) => h('option', { value: p.id }, p.label)));
  const syncCompare = () => {
    comparePreset.hidden = !compareToggle.checked;
    composer.classList.toggle('comparing', compareToggle.checked);
    input.placeholder = compareToggle.checked ? 'Message for an A/B comparison (two replies side by side)' : 'Send a message';
  };
  compareToggle.addEventListener('change', syncCompare);
  syncCompare();

  byId('new-chat').prepend(icon('plus'));
  sidebarBtn.append(icon('menu'));
}
