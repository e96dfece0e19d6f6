/** The markdown summary of `npm run bench`: one table of the headline figures, then the machine. */
import type { BenchReport } from './bench-all.ts';
import type { Distribution } from './lib/stats.ts';

type Row = [section: string, figure: string, value: string];

const fmt = (x: number | null | undefined, unit = ''): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x.toLocaleString('en-US')}${unit}`);
const pair = (d: Distribution | null | undefined): string => (d ? `${fmt(d.p50)} / ${fmt(d.p99)} ms` : '—');
const failures = (by: Record<string, number>): string => {
  const parts = Object.entries(by).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : '0';
};

type Outcome = { error: string } | { skipped: string };

function isOutcome(v: unknown): v is Outcome {
  return typeof v === 'object' && v !== null && ('error' in v || 'skipped' in v);
}

export function markdown(r: BenchReport): string {
  const rows: Row[] = [];
  /** The section's figures, or null after a row saying why there are none. */
  const figures = <T extends object>(section: string, v: T | Outcome | undefined): T | null => {
    if (v === undefined) return null;
    if (!isOutcome(v)) return v as T;
    rows.push([section, 'error' in v ? 'error' : 'skipped', 'error' in v ? v.error : v.skipped]);
    return null;
  };
  const train = figures('train', r.train);
  if (train) {
    rows.push(['train', `tokens/s (batch ${train.batch} x ${train.seq_len}, forward + backward + AdamW)`, `${fmt(train.tokens_per_s)} (${fmt(train.step_s)} s/step)`]);
    if (train.data_parallel?.length) rows.push(['train', 'training loop step, data-parallel: tokens/s by threads', train.data_parallel.map((d) => `${d.threads}: ${fmt(d.tokens_per_s)}`).join('; ')]);
  }
  const decode = figures('decode', r.decode);
  if (decode) {
    rows.push(['decode', `batch 1, KV cache (prompt ${decode.prompt_tokens}, ${decode.steps} new tokens)`, `${fmt(decode.cached_tokens_per_s)} tokens/s`]);
    rows.push(['decode', 'batch 1, no cache (full recompute per token)', `${fmt(decode.nocache_tokens_per_s)} tokens/s`]);
    if (decode.batch8_tokens_per_s !== undefined) rows.push(['decode', 'batch 8, KV cache (aggregate)', `${fmt(decode.batch8_tokens_per_s)} tokens/s`]);
    for (const d of decode.deviations) rows.push(['decode', 'deviation', d]);
  }
  const streams = figures('streams', r.streams);
  if (streams) {
    for (const l of streams.levels) {
      rows.push(['streams', `${l.concurrency} concurrent: tokens/s, TTFT p50/p99, inter-token p50/p99`, `${fmt(l.tokens_per_s)}; ${pair(l.ttft_ms)}; ${pair(l.inter_token_ms)}${l.failed ? `; failed: ${failures(l.failed_by_reason)}` : ''}`]);
    }
    if (streams.idle) rows.push(['streams', 'idle (1 stream): TTFT p50/p99; inter-token p50/p99', `${pair(streams.idle.ttft_ms)}; ${pair(streams.idle.inter_token_ms)}`]);
  }
  const swap = figures('swap', r.swap);
  if (swap) {
    const s = swap;
    rows.push(['swap', `longest inter-token gap across an activation (${s.swaps.length} swaps, ${s.streams} streams)`, `${fmt(s.longest_gap_across_swap_ms, ' ms')} (elsewhere ${fmt(s.longest_gap_elsewhere_ms, ' ms')})`]);
    rows.push(['swap', 'activation time (each)', s.swaps.map((w) => fmt(w.activate_ms, ' ms')).join(', ')]);
    rows.push(['swap', 'failed requests; answered by a stale version', `${failures(s.requests.failed_by_reason)}; ${s.wrong_version}`]);
  }
  const memory = figures('memory', r.memory);
  if (memory) {
    rows.push(['memory', `RSS before → after ${fmt(memory.generated_tokens)} tokens`, `${fmt(memory.before.rss_mb)} → ${fmt(memory.after.rss_mb)} MB (${memory.rss_delta_mb >= 0 ? '+' : ''}${fmt(memory.rss_delta_mb)})`]);
    rows.push(['memory', 'engine tensors before → after', `${fmt(memory.before.num_tensors)} → ${fmt(memory.after.num_tensors)} (${memory.num_tensors_delta >= 0 ? '+' : ''}${memory.num_tensors_delta})`]);
  }
  const training = figures('training', r.training);
  if (training) {
    rows.push(['training', `idle, same ${training.rounds} rounds just before: TTFT p50/p99; inter-token p50/p99`, `${pair(training.idle.ttft_ms)}; ${pair(training.idle.inter_token_ms)}`]);
    rows.push(['training', `during a training run (${training.rounds} rounds): TTFT p50/p99; inter-token p50/p99`, `${pair(training.ttft_ms)}; ${pair(training.inter_token_ms)}`]);
    rows.push(['training', 'during / idle: TTFT p50, p99; inter-token p50, p99', `${training.ratio.ttft_p50}, ${training.ratio.ttft_p99}; ${training.ratio.inter_token_p50}, ${training.ratio.inter_token_p99}`]);
  }
  const m = r.machine;
  const backend = m.tfjs_backend ? `${m.tfjs_backend.name}${m.tfjs_backend.simd === null ? '' : m.tfjs_backend.simd ? ' (SIMD)' : ' (no SIMD)'}` : '—';
  const model = r.server_model ? `; server: ${r.server_model.source === 'checkpoint' ? r.server_model.checkpoint : `random ${r.server_model.preset}`} (${fmt(r.server_model.params)} params)` : '';
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `## npm run bench (${r.started_at})`,
    '',
    `Machine: ${m.cores} cores, ${m.cpu_model}, ${fmt(m.total_memory_mb)} MB, Node ${m.node}, tfjs ${backend}, load average ${m.loadavg_1m_at_start} at start. ` +
      `Preset ${r.preset}${model}. ${r.wall_s} s in all.`,
    '',
    '| section | figure | value |',
    '| --- | --- | --- |',
    ...rows.map((row) => `| ${row.map(escape).join(' | ')} |`),
    '',
  ].join('\n');
}
