/**
 * `npm run models -- register DIR`
 *
 * Registers a checkpoint under CHECKPOINT_DIR (default STATE_DIR/checkpoints) as a candidate model
 * version in the database (DATABASE_URL, else the embedded one under STATE_DIR; the embedded one only
 * while no server has it open). Activate it from the dashboard or with
 * `POST /api/admin/models/ID/activate`. Prints the new version as JSON. Exit 2 for bad usage, 1 when
 * the checkpoint is refused.
 */
import { initEngine } from '../model/backend.ts';
import { openDatabase } from '../db/connect.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { checkpointRoot, registerCheckpoint } from './register-checkpoint.ts';

const USAGE = 'usage: npm run models -- register DIR';

async function main(args: string[]): Promise<number> {
  const [command, dir, ...rest] = args;
  if (command !== 'register' || !dir || rest.length > 0) {
    process.stderr.write(USAGE + '\n');
    return command === '--help' || command === '-h' ? 0 : 2;
  }
  await initEngine({ log: () => {} });
  const handle = await openDatabase({ databaseUrl: process.env.DATABASE_URL || undefined, stateDir: process.env.STATE_DIR || './.state' });
  try {
    await migrateToLatest(handle.db);
    const v = await registerCheckpoint(handle.db, dir, checkpointRoot());
    process.stdout.write(JSON.stringify({ id: v.id, kind: v.kind, status: v.status, checkpoint_path: v.checkpoint_path, sha256: v.sha256, parent_id: v.parent_id }) + '\n');
    process.stderr.write(`registered version ${v.id}; activate it with POST /api/admin/models/${v.id}/activate or from the dashboard\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`models: ${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  } finally {
    await handle.close();
  }
}

main(process.argv.slice(2)).then((code) => (process.exitCode = code));
