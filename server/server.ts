/**
 * The whole server on one port: makes its state private (private-state.ts), opens the database and runs the migrations (a failure stops
 * start-up naming the migration), starts the engine worker, makes sure a policy version is active and
 * loads it, then serves the hono app and the WebSocket endpoint. `close()` shuts down gracefully:
 * no new requests, running replies get SHUTDOWN_GRACE_MS to finish, the rest are cancelled and
 * stored, then sockets, engine and database close.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { Logger } from 'pino';
import { ensureAdminToken } from './admin-token.ts';
import { createApp } from './app.ts';
import { Origins } from './origins.ts';
import { ensurePrivateDir, usePrivateUmask } from './private-state.ts';
import { sweepInterruptedReplies } from './chat/interrupted.ts';
import { ClientLimits } from './chat/limits.ts';
import { ReplyRegistry } from './chat/registry.ts';
import type { ServerConfig } from './config.ts';
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../db/index.ts';
import type { ServerDeps } from './deps.ts';
import { EngineHost } from './engine/engine-host.ts';
import { createLogger } from '../trainer/online/process-setup.ts';
import { createMetrics } from './metrics.ts';
import { ModelManager } from './model-manager.ts';
import { startModelSync } from './model-sync.ts';
import { OnlineTrainer } from '../trainer/online/online-trainer.ts';
import { attachWebSocket } from './ws/upgrade.ts';

export interface RunningServer {
  /** http://host:port (loopback when listening on every interface). */
  url: string;
  port: number;
  deps: ServerDeps;
  close(): Promise<void>;
}

interface CreateServerOptions {
  /** An open, owned-by-the-caller database (tests); otherwise opened from the config and closed with the server. */
  database?: DatabaseHandle;
  logger?: Logger;
}

export async function createServer(config: ServerConfig, opts: CreateServerOptions = {}): Promise<RunningServer> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => log.error({ err }, 'shutdown step failed'));
  };
  try {
    usePrivateUmask();
    await ensurePrivateDir(config.stateDir);
    const database =
      opts.database ??
      (await openDatabase({ databaseUrl: config.databaseUrl, stateDir: config.stateDir, onPoolError: (err) => log.warn({ err }, 'PostgreSQL pool error') }));
    if (!opts.database) cleanups.push(() => database.close());
    for (const r of await migrateToLatest(database.db)) log.info({ migration: r.migration, status: r.status }, 'migration applied');
    await sweepInterruptedReplies(database, log);

    const engine = await EngineHost.start({
      ...config.engine,
      onRestart: ({ error, restarted, loadedVersion }) =>
        restarted
          ? log.warn({ cause: error.message, model_version: loadedVersion }, 'engine worker restarted after it exited; its running replies ended with an error')
          : log.error({ err: error }, 'engine worker restart failed; retrying'),
    });
    cleanups.push(() => engine.close());
    log.info({ engine: engine.engine }, 'engine started');
    const models = new ModelManager(database.db, engine, log);
    await models.start({ checkpoint: config.checkpoint, stateDir: config.stateDir });

    const sync = startModelSync({ models, connectionString: database.connectionString, intervalMs: config.modelSyncMs, log });
    cleanups.push(() => sync.close());
    let trainer: OnlineTrainer | null = null;
    if (config.trainer.mode === 'embedded') {
      trainer = new OnlineTrainer({ db: database.db, connectionString: database.connectionString, config: config.trainer, log: log.child({ component: 'trainer' }), onPublished: () => void sync.poke() });
      trainer.start();
      cleanups.push(() => trainer!.stop());
      log.info({ min_new_pairs: config.trainer.minNewFeedback, interval_s: config.trainer.intervalSec, checkpoints: config.trainer.checkpointDir }, 'online trainer running in the background');
    }

    const admin = await ensureAdminToken(config);
    if (admin.created) process.stderr.write(`\nAdmin token (shown once; saved in ${admin.file} with mode 0600):\n  ${admin.token}\n\n`);

    const deps: ServerDeps = {
      config,
      db: database.db,
      dbKind: database.kind,
      engine,
      models,
      log,
      adminToken: admin.token,
      origins: new Origins(config),
      trainer,
      metrics: createMetrics({ engine, db: database.db, activeVersion: () => models.current?.id ?? null }),
      limits: new ClientLimits(config.limits),
      replies: new ReplyRegistry(),
    };
    const server = createAdaptorServer({ fetch: createApp(deps).fetch }) as Server;
    const ws = attachWebSocket(server, deps);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    deps.origins.listening(port);
    if (deps.origins.usesHostHeader) log.warn({ host: config.host }, 'PUBLIC_ORIGIN is unset and HOST is a wildcard: browser origins are compared with the Host header; set PUBLIC_ORIGIN to the address browsers use');
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        log.info({ running: deps.replies.size }, 'shutting down');
        const stopped = new Promise((resolve) => server.close(resolve));
        await deps.replies.drain(config.shutdownGraceMs);
        ws.close();
        server.closeAllConnections();
        await stopped;
        await cleanup();
        log.info('stopped');
      })());
    return { url: `http://${host}:${port}`, port, deps, close };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

