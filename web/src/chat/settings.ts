/**
 * The decoding settings panel: strategy and its options, remembered in localStorage. `decoding()`
 * gives the options that matter for the chosen strategy, as the protocol's `Decoding`.
 */
import type { Decoding } from '../../../server/protocol.ts';
import { h } from '../shared/dom.ts';

const STORAGE_KEY = 'rlhf-chat:decoding';

type Strategy = NonNullable<Decoding['strategy']>;

interface Settings {
  strategy: Strategy;
  max_new_tokens: number;
  repetition_penalty: number;
  temperature: number;
  top_k: number;
  top_p: number;
  beam_width: number;
  length_penalty: number;
}

const DEFAULT_SETTINGS: Settings = {
  strategy: 'sample',
  max_new_tokens: 64,
  repetition_penalty: 1.1,
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  beam_width: 4,
  length_penalty: 1,
};

interface Field {
  key: Exclude<keyof Settings, 'strategy'>;
  label: string;
  min: number;
  max: number;
  step: number;
  /** Strategies the option applies to. */
  for: Strategy[];
  hint: string;
}

const FIELDS: Field[] = [
  { key: 'max_new_tokens', label: 'Max new tokens', min: 1, max: 1024, step: 1, for: ['greedy', 'beam_search', 'sample'], hint: 'Upper bound on the reply length in tokens.' },
  { key: 'repetition_penalty', label: 'Repetition penalty', min: 0.1, max: 10, step: 0.05, for: ['greedy', 'beam_search', 'sample'], hint: '1 is off; above 1 discourages repeating tokens.' },
  { key: 'temperature', label: 'Temperature', min: 0, max: 5, step: 0.05, for: ['sample'], hint: 'Higher is more random; 0 picks the most likely token.' },
  { key: 'top_k', label: 'Top-k', min: 0, max: 65536, step: 1, for: ['sample'], hint: 'Sample among the k most likely tokens; 0 is off.' },
  { key: 'top_p', label: 'Top-p', min: 0.01, max: 1, step: 0.01, for: ['sample'], hint: 'Sample from the smallest set of tokens with this much probability.' },
  { key: 'beam_width', label: 'Beam width', min: 1, max: 16, step: 1, for: ['beam_search'], hint: 'Partial replies kept at each step.' },
  { key: 'length_penalty', label: 'Length penalty', min: -10, max: 10, step: 0.1, for: ['beam_search'], hint: 'Above 0 favours longer replies.' },
];

const STRATEGY_NAMES: Record<Strategy, string> = { greedy: 'Greedy', beam_search: 'Beam search', sample: 'Sampling' };

function loadSettings(): Settings {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '{}') as Partial<Settings>;
    const merged = { ...DEFAULT_SETTINGS };
    if (saved.strategy && saved.strategy in STRATEGY_NAMES) merged.strategy = saved.strategy;
    for (const f of FIELDS) {
      const v = saved[f.key];
      if (typeof v === 'number' && Number.isFinite(v) && v >= f.min && v <= f.max) merged[f.key] = v;
    }
    return merged;
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

function saveSettings(s: Settings): void {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  } catch {
    // Private mode or storage full: the settings still apply to this page.
  }
}

/** The options of `s` that apply to its strategy (others are left to the server's defaults). */
export function toDecoding(s: Settings, strategy: Strategy = s.strategy): Decoding {
  const d: Decoding = { strategy };
  for (const f of FIELDS) if (f.for.includes(strategy)) (d as Record<string, unknown>)[f.key] = s[f.key];
  return d;
}

/** Builds the panel into `root`; calls `onChange` with every valid change (already saved). */
export function settingsPanel(root: HTMLElement, onChange: (s: Settings) => void): { get(): Settings } {
  let current = loadSettings();
  const strategy = h('select', { id: 'set-strategy' }, ...(Object.keys(STRATEGY_NAMES) as Strategy[]).map((k) => h('option', { value: k }, STRATEGY_NAMES[k])));
  strategy.value = current.strategy;
  const inputs = new Map<Field['key'], HTMLInputElement>();
  const rows = FIELDS.map((f) => {
    const input = h('input', { id: `set-${f.key}`, type: 'number', min: f.min, max: f.max, step: f.step, inputmode: 'decimal', 'aria-describedby': `hint-${f.key}` });
    input.value = String(current[f.key]);
    inputs.set(f.key, input);
    return h('div', { class: 'field', 'data-for': f.for.join(' ') }, h('label', { for: input.id }, f.label), input, h('small', { id: `hint-${f.key}` }, f.hint));
  });
  const reset = h('button', { type: 'button', class: 'secondary' }, 'Reset to defaults');

  const showRelevant = () => {
    for (const row of rows) row.hidden = !(row.dataset.for ?? '').split(' ').includes(strategy.value);
  };
  const read = () => {
    const next: Settings = { ...current, strategy: strategy.value as Strategy };
    for (const f of FIELDS) {
      const input = inputs.get(f.key)!;
      const v = input.valueAsNumber;
      const ok = Number.isFinite(v) && v >= f.min && v <= f.max && (f.step < 1 || Number.isInteger(v));
      input.setAttribute('aria-invalid', String(!ok));
      if (ok) next[f.key] = v;
    }
    current = next;
    saveSettings(current);
    showRelevant();
    onChange(current);
  };
  strategy.addEventListener('change', read);
  for (const input of inputs.values()) input.addEventListener('input', read);
  reset.addEventListener('click', () => {
    strategy.value = DEFAULT_SETTINGS.strategy;
    for (const f of FIELDS) inputs.get(f.key)!.value = String(DEFAULT_SETTINGS[f.key]);
    read();
  });

  root.replaceChildren(
    h('h2', {}, 'Decoding settings'),
    h('div', { class: 'field' }, h('label', { for: strategy.id }, 'Strategy'), strategy),
    ...rows,
    reset,
    h('p', { class: 'muted' }, 'Saved in this browser.'),
  );
  showRelevant();
  return { get: () => current };
}

/** A/B presets: what the two sides of a comparison use. */
export const COMPARE_PRESETS: { id: string; label: string; sides(s: Settings): [Decoding, Decoding] }[] = [
  { id: 'greedy-beam', label: 'Greedy vs beam search', sides: (s) => [toDecoding(s, 'greedy'), toDecoding(s, 'beam_search')] },
  { id: 'two-samples', label: 'Two samples', sides: (s) => [toDecoding(s, 'sample'), toDecoding(s, 'sample')] },
  { id: 'mine-greedy', label: 'My settings vs greedy', sides: (s) => [toDecoding(s), toDecoding(s, 'greedy')] },
];
