// npm run migrate -- up|down|status
// Uses DATABASE_URL (PostgreSQL) when set, otherwise the embedded database under STATE_DIR (./.state).
import { openDatabase } from './connect.ts';
import { MigrationError, migrateDown, migrateToLatest, migrationStatus, type MigrationReport } from './migrate.ts';

const USAGE = 'usage: npm run migrate -- up | down [--all] | status';

function print(results: MigrationReport[]): void {
  if (results.length === 0) console.log('nothing to do');
  for (const { migration, direction, status } of results) {
    console.log(`${status.padEnd(11)} ${direction.toLowerCase().padEnd(4)} ${migration}`);
  }
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const all = rest.includes('--all');
  const unknown = rest.filter((a) => a !== '--all' || command !== 'down');
  const problem = !command
    ? 'no command given'
    : !['up', 'down', 'status'].includes(command)
      ? `unknown command '${command}'; expected up, down or status`
      : unknown.length > 0
        ? `unknown argument${unknown.length > 1 ? 's' : ''} ${unknown.map((a) => `'${a}'`).join(', ')} for ${command}`
        : null;
  if (problem) {
    console.error(`migrate: ${problem}\n${USAGE}`);
    return 2;
  }
  const { db, kind, close } = await openDatabase({
    databaseUrl: process.env.DATABASE_URL || undefined,
    stateDir: process.env.STATE_DIR || './.state',
  });
  try {
    console.log(`database: ${kind}`);
    if (command === 'up') print(await migrateToLatest(db));
    else if (command === 'down') print(await migrateDown(db, { all }));
    else {
      for (const { migration, executedAt } of await migrationStatus(db)) {
        console.log(`${executedAt ? executedAt.toISOString() : 'pending'.padEnd(24)}  ${migration}`);
      }
    }
    return 0;
  } catch (error) {
    if (error instanceof MigrationError) print(error.results);
    console.error(error instanceof Error ? error.message : error);
    return 1;
  } finally {
    await close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
