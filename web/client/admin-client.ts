/**
 * The admin REST routes (Bearer ADMIN_TOKEN): model versions (activate, rollback), training runs,
 * feedback counts and the JSONL export.
 *
 * `AdminStats` and `TrainingRunInfo` are the shapes this client reads; they mirror the database rows
 * (db/schema.ts) until protocol.ts declares them.
 */
import type { ModelVersionInfo } from '../../server/protocol.ts';
import { ChatError } from './errors.ts';
import { request, requestJson, type FetchFn } from './http.ts';

export interface TrainingRunInfo {
  id: number;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  config: Record<string, unknown>;
  metrics: Record<string, unknown>;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  policy_version_id: number | null;
  reward_version_id: number | null;
}

/** Feedback counts; `by_version` is the thumbs-up share of rated replies per policy version. */
export interface AdminStats {
  ratings: { total: number; up: number; down: number };
  pairs: { total: number; by_source?: Record<string, number> };
  by_version?: { model_version: number; up: number; down: number }[];
}

export type ExportKind = 'pairs' | 'ratings';

export class AdminClient {
  readonly url: string;
  private readonly fetchFn: FetchFn;

  constructor(
    private readonly token: string,
    { url, fetch }: { url?: string; fetch?: FetchFn } = {},
  ) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const base = url ?? origin;
    if (!base) throw new TypeError('AdminClient: `url` is required outside a browser');
    this.url = base.replace(/\/+$/, '');
    this.fetchFn = fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  private get<T>(path: string): Promise<T> {
    return requestJson<T>(this.fetchFn, this.url + path, { token: this.token });
  }

  private post<T>(path: string, body: unknown = {}): Promise<T> {
    return requestJson<T>(this.fetchFn, this.url + path, { method: 'POST', token: this.token, body });
  }

  /** Every version (policies and reward models) and the one this server serves. */
  models(): Promise<{ serving: number | null; versions: ModelVersionInfo[] }> {
    return this.get('/api/admin/models');
  }

  activate(id: number): Promise<{ version: ModelVersionInfo }> {
    return this.post(`/api/admin/models/${id}/activate`);
  }

  rollback(): Promise<{ version: ModelVersionInfo }> {
    return this.post('/api/admin/models/rollback');
  }

  async runs(): Promise<TrainingRunInfo[]> {
    const body = await this.get<{ runs: TrainingRunInfo[] } | TrainingRunInfo[]>('/api/admin/runs');
    return Array.isArray(body) ? body : body.runs;
  }

  /** Queues a training run now (the trainer takes it at once unless one is running); returns it. */
  async train(): Promise<TrainingRunInfo> {
    return (await this.post<{ run: TrainingRunInfo }>('/api/admin/train')).run;
  }

  /**
   * Feedback counts from `GET /api/admin/stats`; where the server lacks that route, they are counted
   * from the export (`derived`): all pairs, but only the ratings outside pairs, and no per-version figures.
   */
  async stats(): Promise<AdminStats & { derived?: true }> {
    try {
      return await this.get<AdminStats>('/api/admin/stats');
    } catch (err) {
      if (!(err instanceof ChatError && err.code === 'not_found')) throw err;
    }
    const [pairs, singles] = await Promise.all([this.exportLines('pairs'), this.exportLines('ratings')]);
    const bySource: Record<string, number> = {};
    for (const p of pairs) bySource[String(p.source)] = (bySource[String(p.source)] ?? 0) + 1;
    const up = singles.filter((r) => r.label === true).length;
    return {
      derived: true,
      ratings: { total: singles.length, up, down: singles.length - up },
      pairs: { total: pairs.length, by_source: bySource },
    };
  }

  /** The raw JSONL of `GET /api/admin/export?kind=…`. */
  async exportJsonl(kind: ExportKind = 'pairs'): Promise<string> {
    const res = await request(this.fetchFn, `${this.url}/api/admin/export?kind=${kind}`, { token: this.token });
    return res.text();
  }

  private async exportLines(kind: ExportKind): Promise<Record<string, unknown>[]> {
    const text = await this.exportJsonl(kind);
    return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
