/**
 * `training`: time to first token and inter-token latency while the server trains online.
 *
 * `duringTraining(start, measure)` is the hook: `start` begins a training run somehow and resolves
 * once it is running, to a handle that says whether it still is and ends the bench's interest in it;
 * `measure` runs one round of streams. Rounds run while the run's status is 'running'. Any other way
 * of loading the machine with training (a child process, a test double) can be passed as `start`.
 *
 * `adminTrainStarter` is the server's way: POST /api/admin/train queues an online run that the server
 * runs in a child process and answers {run:{id}}; GET /api/admin/runs/:id gives its status
 * (queued → running → succeeded | failed | cancelled). A server without the route (404), or one that
 * refuses to start a run, makes the section report { skipped: why } rather than fail.
 */
import { median, round } from '../lib/stats.ts';
import { summarize, type RequestSummary } from '../lib/summary.ts';
import type { RequestResult } from '../lib/ws-client.ts';
import { roundTokensPerS } from './streams.ts';

/** The section cannot run here; reported as { skipped: message }. */
class SkipSection extends Error {}

interface TrainingHandle {
  /** What to report about the run (e.g. its id). */
  info: Record<string, unknown>;
  /** Whether it is still training; rounds stop when it is not. */
  running(): Promise<boolean>;
  /** Called once when measuring is over. */
  end(): Promise<void>;
}

/** Starts training and resolves once it is running; throws SkipSection when it cannot. */
type StartTraining = () => Promise<TrainingHandle>;

export interface TrainingFigures extends RequestSummary {
  run: Record<string, unknown>;
  /** The same rounds measured just before the run, with nothing training: the baseline. */
  idle: RequestSummary;
  /** During / idle for TTFT and inter-token latency, p50 and p99 (the goal is under 2). */
  ratio: Record<string, number | null>;
  rounds: number;
  measured_s: number;
  tokens_per_s: number | null;
  /** Why rounds stopped before the planned number: the run was no longer running. */
  ended_early: boolean;
}

export type Skipped = { skipped: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function duringTraining(
  start: StartTraining,
  measure: (round: number) => Promise<RequestResult[]>,
  { rounds, log }: { rounds: number; log: (line: string) => void },
): Promise<TrainingFigures | Skipped> {
  const idle: RequestResult[] = [];
  for (let r = 0; r < rounds; r++) idle.push(...(await measure(r)));
  let handle: TrainingHandle;
  try {
    handle = await start();
  } catch (err) {
    if (err instanceof SkipSection) {
      log(`training: skipped: ${err.message}`);
      return { skipped: err.message };
    }
    throw err;
  }
  const results: RequestResult[] = [];
  const rates: number[] = [];
  const t0 = performance.now();
  let done = 0;
  let endedEarly = false;
  try {
    for (; done < rounds; done++) {
      if (!(await handle.running())) {
        endedEarly = true;
        break;
      }
      const got = await measure(done);
      results.push(...got);
      const rate = roundTokensPerS(got);
      if (rate !== null) rates.push(rate);
    }
  } finally {
    await handle.end();
  }
  if (done === 0) return { skipped: `training run ${JSON.stringify(handle.info)} stopped running before any round was measured` };
  const during = summarize(results);
  const baseline = summarize(idle);
  const ratio: Record<string, number | null> = {};
  for (const key of ['ttft_ms', 'inter_token_ms'] as const) {
    for (const p of ['p50', 'p99'] as const) {
      const a = during[key]?.[p];
      const b = baseline[key]?.[p];
      ratio[`${key.replace('_ms', '')}_${p}`] = a != null && b ? round(a / b, 2) : null;
    }
  }
  const figures: TrainingFigures = {
    run: handle.info,
    idle: baseline,
    ratio,
    rounds: done,
    measured_s: round((performance.now() - t0) / 1000, 1),
    ...during,
    tokens_per_s: rates.length > 0 ? round(median(rates), 1) : null,
    ended_early: endedEarly,
  };
  log(`training: ${done} round(s) while running: ttft p50 ${figures.ttft_ms?.p50} ms, inter-token p50 ${figures.inter_token_ms?.p50} ms p99 ${figures.inter_token_ms?.p99} ms; during/idle ${JSON.stringify(ratio)}`);
  return figures;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const TRAINING_PHASES = new Set(['reward model', 'ppo', 'gate']);

async function readError(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: string } };
    return body.error?.message ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}

/** Through the admin API: POST /api/admin/train, then GET /api/admin/runs/:id until 'running'. */
export function adminTrainStarter(url: string, adminToken: string, { waitRunningMs = 60_000, log = (_: string) => {} } = {}): StartTraining {
  const headers = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
  return async () => {
    const res = await fetch(`${url}/api/admin/train`, { method: 'POST', headers, body: '{}' });
    if (res.status === 404) {
      await res.arrayBuffer();
      throw new SkipSection('the server has no POST /api/admin/train (404)');
    }
    if (!res.ok) throw new SkipSection(`POST /api/admin/train answered ${res.status}: ${await readError(res)}`);
    const body = (await res.json()) as { run?: { id?: number }; id?: number };
    const id = body.run?.id ?? body.id;
    if (typeof id !== 'number') throw new Error(`POST /api/admin/train answered without a run id: ${JSON.stringify(body).slice(0, 200)}`);
    const status = async (): Promise<string> => {
      const r = await fetch(`${url}/api/admin/runs/${id}`, { headers });
      if (!r.ok) throw new Error(`GET /api/admin/runs/${id} answered ${r.status}: ${await readError(r)}`);
      const b = (await r.json()) as { run?: { status?: string; metrics?: { phase?: unknown } } };
      const s = b.run?.status ?? 'unknown';
      // A run is 'running' from its claim, while its inputs are still being read: measure only once
      // the training child is working (its phases), which is what loads the machine.
      return s === 'running' && !TRAINING_PHASES.has(String(b.run?.metrics?.phase)) ? 'preparing' : s;
    };
    const deadline = Date.now() + waitRunningMs;
    for (;;) {
      const s = await status();
      if (s === 'running') break;
      if (TERMINAL.has(s)) throw new SkipSection(`training run ${id} ended (${s}) before it was running long enough to measure`);
      if (Date.now() > deadline) throw new SkipSection(`training run ${id} was still ${s} after ${waitRunningMs / 1000}s`);
      await sleep(250);
    }
    log(`training run ${id} is running`);
    return {
      info: { id },
      running: async () => (await status()) === 'running',
      // The run is the server's: it goes on until it ends or the server closes (which stops its child).
      end: async () => {},
    };
  };
}
