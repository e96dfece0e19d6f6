/**
 * `npm start [-- --port N --host H --checkpoint DIR --state-dir DIR --database-url URL --log-level L]`
 *
 * Starts the chat server (see server.ts) and stops it gracefully on SIGINT/SIGTERM (a second signal
 * exits at once). Exit 2: invalid configuration; exit 1: start-up failed (database, migration, model).
 */
import { createLogger, runEntryPoint } from '../trainer/online/process-setup.ts';
import { loadConfig } from './config.ts';

await runEntryPoint({
  configure: () => loadConfig({ argv: process.argv.slice(2) }),
  logger: (config) => createLogger(config.logLevel),
  async start(config, log) {
    // Imported after the configuration is known good, so that a bad one fails fast.
    const { createServer } = await import('./server.ts');
    const server = await createServer(config, { logger: log });
    log.info({ url: server.url, database: server.deps.dbKind, model_version: server.deps.models.current?.id }, `listening on ${server.url}`);
    return () => server.close();
  },
});
