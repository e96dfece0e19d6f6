/**
 * Prometheus metrics (GET /metrics), in a registry of their own (several servers can share a process
 * in tests). Engine and feedback figures are read when scraped: live sequences and queue from the
 * engine worker, rating and pair counts from the database (so they agree across replicas).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countPairsBySource, countRatings, type Db } from '../db/index.ts';
import type { EngineHost } from './engine/engine-host.ts';

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics({ engine, db, activeVersion }: { engine: EngineHost; db: Db; activeVersion: () => number | null }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics = {
    registry,
    httpRequests: new Counter({ name: 'http_requests_total', help: 'HTTP requests by route pattern and status', labelNames: ['method', 'route', 'status'], registers }),
    wsConnections: new Gauge({ name: 'ws_connections', help: 'Open WebSocket connections', registers }),
    generations: new Counter({ name: 'chat_generations_total', help: 'Finished replies by API and finish reason', labelNames: ['api', 'finish_reason'], registers }),
    errors: new Counter({ name: 'chat_errors_total', help: 'Refused or failed requests by error code', labelNames: ['code'], registers }),
    tokens: new Counter({ name: 'chat_tokens_generated_total', help: 'Tokens generated (end of turn excluded)', registers }),
    ttft: new Histogram({
      name: 'chat_time_to_first_token_seconds',
      help: 'From request to the first text delta',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    itl: new Histogram({
      name: 'chat_inter_token_latency_seconds',
      help: 'Between consecutive text deltas of a reply',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    ratingsRecorded: new Counter({ name: 'feedback_ratings_recorded_total', help: 'Ratings written by this process (value 0 = removed)', labelNames: ['value'], registers }),
    comparisonsRecorded: new Counter({ name: 'feedback_comparisons_recorded_total', help: 'A/B choices written by this process', labelNames: ['choice'], registers }),
  };
  new Gauge({
    name: 'engine_live_sequences',
    help: 'Rows (streams and beams) in the shared decode batch',
    registers,
    async collect() {
      this.set((await engine.stats()).liveRows);
    },
  });
  new Gauge({
    name: 'engine_queue_length',
    help: 'Requests waiting for a row',
    registers,
    async collect() {
      this.set((await engine.stats()).queued);
    },
  });
  new Gauge({
    name: 'engine_requests_in_flight',
    help: 'Requests accepted by the engine and not finished',
    registers,
    collect() {
      this.set(engine.requestsInFlight);
    },
  });
  new Gauge({
    name: 'model_active_version',
    help: 'Id of the policy version serving new requests',
    registers,
    collect() {
      this.set(activeVersion() ?? 0);
    },
  });
  new Gauge({
    name: 'feedback_ratings',
    help: 'Ratings stored',
    registers,
    async collect() {
      this.set(await countRatings(db));
    },
  });
  new Gauge({
    name: 'feedback_pairs',
    help: 'Preference pairs stored, by source',
    labelNames: ['source'],
    registers,
    async collect() {
      const counts = await countPairsBySource(db);
      this.reset();
      for (const { source, n } of counts) this.set({ source }, n);
    },
  });
  return metrics;
}
