/** A throw-away PostgreSQL database for tests against a real server: created per call, dropped on close. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createSession, migrateToLatest, openDatabase, openMemoryDatabase, type DatabaseHandle } from '../../db/index.ts';

/** Creates `<prefix>_<random>` on the server of `serverUrl`; closing the handle drops it. */
export async function openScratchDatabase(serverUrl: string, prefix = 'test'): Promise<DatabaseHandle> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ databaseUrl: url.href, stateDir: '/nonexistent' });
  return {
    ...handle,
    close: async () => {
      await handle.close();
      await admin(`drop database if exists ${name} with (force)`);
    },
  };
}

/** A database a repository test runs against. */
export interface DatabaseTarget {
  name: string;
  open(): Promise<DatabaseHandle>;
}

/** In-memory PGlite, and with DATABASE_URL a scratch database `<prefix>_<random>` on that PostgreSQL server. */
export function databaseTargets(prefix = 'test'): DatabaseTarget[] {
  const targets: DatabaseTarget[] = [{ name: 'PGlite (in memory)', open: openMemoryDatabase }];
  const serverUrl = process.env.DATABASE_URL;
  if (serverUrl) targets.push({ name: 'PostgreSQL (scratch database)', open: () => openScratchDatabase(serverUrl, prefix) });
  return targets;
}

/** `target` opened and migrated, with one session to store conversations under. */
export async function openWithSession(target: DatabaseTarget): Promise<{ handle: DatabaseHandle; sessionId: number }> {
  const handle = await target.open();
  try {
    await migrateToLatest(handle.db);
    return { handle, sessionId: (await createSession(handle.db)).session.id };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
