/**
 * What the routes and the WebSocket handlers share: configuration, database, engine, model manager,
 * metrics, logger, limits and the registry of running replies. Built once by server.ts.
 */
import type { Logger } from 'pino';
import type { ServerConfig } from './config.ts';
import type { Db, DatabaseKind, Session } from '../db/index.ts';
import type { EngineHost } from './engine/engine-host.ts';
import type { Metrics } from './metrics.ts';
import type { Origins } from './origins.ts';
import type { ModelManager } from './model-manager.ts';
import type { ReplyRegistry } from './chat/registry.ts';
import type { ClientLimits } from './chat/limits.ts';
import type { OnlineTrainer } from '../trainer/online/online-trainer.ts';

export interface ServerDeps {
  config: ServerConfig;
  db: Db;
  dbKind: DatabaseKind;
  engine: EngineHost;
  models: ModelManager;
  metrics: Metrics;
  log: Logger;
  limits: ClientLimits;
  replies: ReplyRegistry;
  adminToken: string;
  /** The browser origins trusted as the server's own (WebSocket upgrades, cookie-authenticated writes). */
  origins: Origins;
  /** The embedded background trainer (null when `npm run trainer` trains, TRAINER=off). */
  trainer: OnlineTrainer | null;
}

/** Hono's per-request variables. */
export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** Set by the session middleware. */
    session: Session;
    /** The client's address (see client-address.ts), for the per-address limits. */
    clientAddress: string;
  };
}
