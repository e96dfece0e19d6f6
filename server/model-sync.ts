/**
 * Keeps the served policy in line with the database when something else changes it: a trainer that
 * published a version (in this process, or another one sending NOTIFY), or another replica's admin
 * activating one. On PostgreSQL a LISTEN connection gives near-instant swaps; a periodic check covers
 * lost notifications and PGlite. A failed check (database away) is logged and retried next time.
 */
import type { Logger } from 'pino';
import { CHANNELS, listen, type Listener } from '../db/index.ts';
import type { ModelManager } from './model-manager.ts';

interface ModelSync {
  /** Checks now (e.g. after an in-process publish). */
  poke(): Promise<void>;
  close(): Promise<void>;
}

export function startModelSync({ models, connectionString, intervalMs, log }: { models: ModelManager; connectionString?: string; intervalMs: number; log: Logger }): ModelSync {
  let failures = 0;
  const check = async () => {
    try {
      const before = models.current?.id;
      const now = await models.syncWithDatabase();
      if (failures > 0) log.info({ after_failures: failures }, 'model sync works again');
      failures = 0;
      if (now && now.id !== before) log.info({ version: now.id, previous: before }, 'now serving the database\'s active policy');
    } catch (err) {
      if (failures++ === 0) log.warn({ err }, `model sync failed: ${(err as Error).message}`);
    }
  };
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  let listener: Listener | null = null;
  if (connectionString) {
    listener = listen(connectionString, [CHANNELS.models], {
      onNotify: () => void check(),
      onReconnect: () => void check(),
      onError: (err) => log.warn({ err }, `LISTEN connection: ${err.message}`),
    });
  }
  return {
    poke: check,
    async close() {
      clearInterval(timer);
      await listener?.close();
    },
  };
}
