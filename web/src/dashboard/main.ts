/**
 * The training dashboard: feedback counts, model versions with activate / roll back, training runs
 * with their progress, charts of reward-model accuracy, PPO reward and KL, and thumbs-up rate per
 * policy version, and the JSONL export. The admin token is asked once and kept in sessionStorage.
 * Refreshes every few seconds while the tab is visible.
 */
import type { ModelVersionInfo } from '../../../server/protocol.ts';
import { AdminClient, ChatError, plainWords, type AdminStats, type ExportKind, type TrainingRunInfo } from '../../client/index.ts';
import { byId, h } from '../shared/dom.ts';
import { icon } from '../shared/icons.ts';
import { LineChart } from './charts.ts';
import '../shared/base.css';
import './dashboard.css';

const TOKEN_KEY = 'rlhf-chat:admin-token';
const REFRESH_MS = 5000;

const loginEl = byId<HTMLFormElement>('login');
const tokenInput = byId<HTMLInputElement>('admin-token');
const boardEl = byId('board');
const alertsEl = byId('alerts');
const updatedEl = byId('updated');

let admin: AdminClient | null = null;
let timer: ReturnType<typeof setTimeout> | null = null;

const charts = {
  rm: new LineChart('Reward model held-out accuracy', 'reward model version', [{ label: 'accuracy', color: '#2f6feb' }], 'accuracy'),
  ppo: new LineChart('PPO reward and KL', 'policy version', [{ label: 'reward', color: '#1a7f37' }, { label: 'KL', color: '#cf222e', scale: 'kl' }], 'reward'),
  thumbs: new LineChart('Thumbs-up rate per policy version', 'policy version', [{ label: 'thumbs-up rate', color: '#9a6700' }], 'share of ratings'),
};
byId('charts').append(charts.rm.el, charts.ppo.el, charts.thumbs.el);

function showError(err: unknown): void {
  const text = err instanceof ChatError && err.code === 'not_found' ? `This server does not offer that yet (${err.message}).` : plainWords(err);
  alertsEl.replaceChildren(h('div', { class: 'alert' }, h('span', {}, text), h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: () => alertsEl.replaceChildren() }, icon('close'))));
}

// Sign-in ------------------------------------------------------------------------------------------

function signIn(token: string): void {
  admin = new AdminClient(token);
  loginEl.hidden = true;
  boardEl.hidden = false;
  void refresh();
}

function signOut(message?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  admin = null;
  if (timer) clearTimeout(timer);
  boardEl.hidden = true;
  loginEl.hidden = false;
  byId('login-error').textContent = message ?? '';
  tokenInput.focus();
}

loginEl.addEventListener('submit', (e) => {
  e.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = '';
  signIn(token);
});
byId('sign-out').addEventListener('click', () => signOut());

// Data ---------------------------------------------------------------------------------------------

async function refresh(): Promise<void> {
  if (timer) clearTimeout(timer);
  timer = null;
  const a = admin;
  if (!a) return;
  const [models, runs, stats] = await Promise.allSettled([a.models(), a.runs(), a.stats()]);
  if (a !== admin) return;
  const failures = [models, runs, stats].filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failures.some((e) => e instanceof ChatError && e.code === 'unauthorized')) {
    signOut('That admin token was not accepted. The server prints it at first start and keeps it in STATE_DIR/admin-token.');
    return;
  }
  if (models.status === 'fulfilled') renderModels(models.value.versions, models.value.serving);
  if (runs.status === 'fulfilled') renderRuns(runs.value);
  else renderRunsMissing(runs.reason);
  if (stats.status === 'fulfilled') renderStats(stats.value);
  const other = failures.filter((e) => !(e instanceof ChatError && e.code === 'not_found'));
  if (other.length) showError(other[0]);
  updatedEl.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  if (document.visibilityState === 'visible') timer = setTimeout(() => void refresh(), REFRESH_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && admin && timer === null) void refresh();
});
byId('refresh').addEventListener('click', () => void refresh());

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const fmt = (v: number | null, digits = 3) => (v === null ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(digits));
const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '–');

function setStat(id: string, value: string): void {
  byId(id).textContent = value;
}

function renderStats(s: AdminStats & { derived?: true }): void {
  setStat('pairs-total', String(s.pairs.total));
  setStat('pairs-sources', Object.entries(s.pairs.by_source ?? {}).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none yet');
  setStat('ratings-total', String(s.ratings.total));
  setStat('ratings-label', s.derived ? 'Ratings outside pairs' : 'Ratings');
  setStat('ratings-split', `${s.ratings.up} up · ${s.ratings.down} down`);
  const rate = s.ratings.total > 0 ? s.ratings.up / s.ratings.total : null;
  setStat('thumbs-rate', rate === null ? '–' : `${Math.round(rate * 100)}%`);
  setStat('thumbs-label', s.derived ? 'of the ratings outside pairs' : 'of all ratings');
  const byVersion = [...(s.by_version ?? [])].sort((a, b) => a.model_version - b.model_version);
  charts.thumbs.setData(
    byVersion.map((v) => v.model_version),
    [byVersion.map((v) => (v.up + v.down > 0 ? v.up / (v.up + v.down) : null))],
    { empty: s.by_version ? 'No rated replies yet.' : 'This server does not report ratings per version (GET /api/admin/stats).' },
  );
}

function metric(v: ModelVersionInfo, ...keys: string[]): number | null {
  for (const k of keys) {
    const x = num(v.metrics[k]);
    if (x !== null) return x;
  }
  return null;
}

/** The headline numbers of a version's metrics, in words. */
function metricSummary(v: ModelVersionInfo): string {
  const picks: [string, number | null][] =
    v.kind === 'reward'
      ? [['accuracy', metric(v, 'accuracy')]]
      : [
          ['PPO reward', metric(v, 'ppo_reward', 'reward_mean')],
          ['KL', metric(v, 'ppo_kl', 'kl')],
          ['gate reward', metric(v, 'gate_reward')],
        ];
  const shown = picks.filter(([, x]) => x !== null).map(([k, x]) => `${k} ${fmt(x)}`);
  return shown.join(' · ') || (typeof v.metrics.source === 'string' ? `source: ${v.metrics.source}` : '');
}

function renderModels(versions: ModelVersionInfo[], serving: number | null): void {
  const rows = [...versions].sort((a, b) => b.id - a.id).map((v) => {
    const canActivate = v.kind === 'policy' && v.status !== 'rejected' && v.id !== serving;
    const action = canActivate
      ? h('button', { type: 'button', onclick: () => void act(() => admin!.activate(v.id), `Version ${v.id} is now active.`) }, v.status === 'retired' ? `Roll back to v${v.id}` : `Activate v${v.id}`)
      : v.id === serving
        ? h('span', { class: 'badge serving' }, 'serving')
        : null;
    const details = h('details', {}, h('summary', {}, 'metrics'), h('pre', {}, JSON.stringify(v.metrics, null, 2)));
    return h(
      'tr',
      { 'data-status': v.status },
      h('td', {}, `v${v.id}`),
      h('td', {}, v.kind),
      h('td', {}, h('span', { class: `status ${v.status}` }, v.status)),
      h('td', {}, metricSummary(v), ' ', details),
      h('td', {}, v.reasons.length ? v.reasons.join('; ') : ''),
      h('td', {}, when(v.created_at)),
      h('td', {}, action),
    );
  });
  byId('models-body').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No model versions.'))]));
  byId<HTMLButtonElement>('rollback').disabled = !versions.some((v) => v.kind === 'policy' && v.status === 'retired' && v.activated_at);

  const rewards = versions.filter((v) => v.kind === 'reward').sort((a, b) => a.id - b.id);
  charts.rm.setData(rewards.map((v) => v.id), [rewards.map((v) => metric(v, 'accuracy'))], { empty: 'No reward model versions with an accuracy yet.' });
  const policies = versions.filter((v) => v.kind === 'policy' && metric(v, 'ppo_reward', 'reward_mean', 'ppo_kl', 'kl') !== null).sort((a, b) => a.id - b.id);
  charts.ppo.setData(
    policies.map((v) => v.id),
    [policies.map((v) => metric(v, 'ppo_reward', 'reward_mean')), policies.map((v) => metric(v, 'ppo_kl', 'kl'))],
    { empty: 'No PPO-trained policy versions yet.' },
  );
}

function runProgress(r: TrainingRunInfo): HTMLElement {
  const progress = num(r.metrics.progress);
  const phase = typeof r.metrics.phase === 'string' ? r.metrics.phase : '';
  const bits = Object.entries(r.metrics)
    .filter(([k, v]) => k !== 'progress' && k !== 'phase' && typeof v === 'number')
    .slice(0, 4)
    .map(([k, v]) => `${k} ${fmt(v as number)}`);
  return h(
    'div',
    { class: 'run-progress' },
    progress !== null && r.status === 'running' ? h('progress', { max: 1, value: progress, 'aria-label': `Run ${r.id} progress` }) : null,
    phase ? h('span', {}, phase) : null,
    bits.length ? h('span', { class: 'muted' }, bits.join(' · ')) : null,
  );
}

function renderRuns(runs: TrainingRunInfo[]): void {
  const rows = runs.map((r) =>
    h(
      'tr',
      {},
      h('td', {}, `#${r.id}`),
      h('td', {}, h('span', { class: `status ${r.status}` }, r.status)),
      h('td', {}, runProgress(r)),
      h('td', {}, [r.policy_version_id && `policy v${r.policy_version_id}`, r.reward_version_id && `reward v${r.reward_version_id}`].filter(Boolean).join(', ') || '–'),
      h('td', {}, when(r.started_at ?? r.created_at)),
      h('td', {}, when(r.finished_at)),
      h('td', { class: 'error-text' }, r.error ?? ''),
    ),
  );
  byId('runs-body').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No training runs yet.'))]));
}

function renderRunsMissing(err: unknown): void {
  const text = err instanceof ChatError && err.code === 'not_found' ? 'This server does not list training runs (GET /api/admin/runs).' : plainWords(err);
  byId('runs-body').replaceChildren(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, text)));
}

// Actions ------------------------------------------------------------------------------------------

async function act(fn: () => Promise<unknown>, done: string): Promise<void> {
  try {
    await fn();
    alertsEl.replaceChildren(h('div', { class: 'notice' }, done));
  } catch (err) {
    showError(err);
  }
  await refresh();
}

byId('rollback').addEventListener('click', () => void act(() => admin!.rollback(), 'Rolled back to the previous version.'));
byId('train').addEventListener('click', () =>
  void (async () => {
    try {
      const run = await admin!.train();
      alertsEl.replaceChildren(h('div', { class: 'notice' }, `Training run ${run.id} queued; its progress shows below.`));
    } catch (err) {
      showError(err);
    }
    await refresh();
  })(),
);

async function download(kind: ExportKind): Promise<void> {
  if (!admin) return;
  try {
    const text = await admin.exportJsonl(kind);
    const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
    const link = h('a', { href: url, download: `${kind}.jsonl` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    showError(err);
  }
}
byId('export-pairs').addEventListener('click', () => void download('pairs'));
byId('export-ratings').addEventListener('click', () => void download('ratings'));

// Start --------------------------------------------------------------------------------------------

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
else signOut();
