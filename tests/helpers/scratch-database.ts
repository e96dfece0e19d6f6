/** A throw-away PostgreSQL database for tests against a real server: created per call, dropped on close. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../../db/index.ts';

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
