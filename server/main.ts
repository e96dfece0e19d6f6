/**
 * `npm start [-- --port N --host H --checkpoint DIR --state-dir DIR --database-url URL --log-level L]`
 *
 * Starts the chat server (see server.ts) and stops it gracefully on SIGINT/SIGTERM (a second signal
 * exits at once). Exit 2: invalid configuration; exit 1: start-up failed (database, migration, model).
 */
import { ConfigError, loadConfig, type ServerConfig } from './config.ts';
import { createLogger } from './logger.ts';

let config: ServerConfig;
try {
  config = loadConfig({ argv: process.argv.slice(2) });
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(2);
}

const log = createLogger(config.logLevel);
try {
  // Imported after the configuration is known good, so that a bad one fails fast.
  const { createServer } = await import('./server.ts');
  const server = await createServer(config, { logger: log });
  log.info({ url: server.url, database: server.deps.dbKind, model_version: server.deps.models.current?.id }, `listening on ${server.url}`);
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'stopping');
    server.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (err) {
  log.fatal({ err }, `start-up failed: ${(err as Error).message}`);
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
}
