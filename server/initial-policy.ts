/**
 * Which policy the server serves at start-up. The database's active policy version wins, except:
 * - CHECKPOINT (env or --checkpoint) names a checkpoint: it is registered (once) and activated;
 * - no version is active yet: the default checkpoint (models/default/policy, else the randomly initialised
 *   `tiny` model under STATE_DIR, created here on first start) is registered and activated;
 * - the active version is that random fallback and models/default/policy has appeared since: it takes over.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { initModelDir, NoCheckpointError, resolveDefaultCheckpoint } from '../model/checkpoint/default-checkpoint.ts';
import { activateModelVersion, getActiveModelVersion, inTransaction, insertModelVersion, listModelVersions, type Db, type ModelVersion } from '../db/index.ts';

/** How a version came to be registered by the server (stored in its metrics as `source`). */
type VersionSource = 'checkpoint' | 'default' | 'init';

/** The kind and weights sha256 from a checkpoint's meta.json (the engine verifies the rest when loading). */
export async function readCheckpointIdentity(dir: string): Promise<{ kind: string; sha256: string }> {
  let meta: { kind?: unknown; weights?: { sha256?: unknown } };
  try {
    meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  } catch (err) {
    throw new Error(`${dir} is not a checkpoint: cannot read meta.json (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const sha256 = meta.weights?.sha256;
  if (typeof sha256 !== 'string' || typeof meta.kind !== 'string') throw new Error(`${dir}/meta.json has no kind or weights.sha256`);
  return { kind: meta.kind, sha256 };
}

/** Registers a policy checkpoint as a version and activates it (reusing a matching non-rejected row). */
async function registerAndActivate(db: Db, dir: string, source: VersionSource): Promise<ModelVersion> {
  const { kind, sha256 } = await readCheckpointIdentity(dir);
  if (kind !== 'policy') throw new Error(`${dir} is a ${kind} checkpoint; the server serves a policy`);
  return inTransaction(db, async (trx) => {
    const existing = (await listModelVersions(trx, { kind: 'policy', limit: 1000 })).find(
      (v) => v.checkpoint_path === dir && v.sha256 === sha256 && v.status !== 'rejected',
    );
    const active = await getActiveModelVersion(trx, 'policy');
    const row = existing ?? (await insertModelVersion(trx, { kind: 'policy', checkpointPath: dir, sha256, parentId: active?.id ?? null, metrics: { source } }));
    return (await activateModelVersion(trx, row.id)).version;
  });
}

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Makes sure a policy version is active (see the header) and returns it. `root` is where
 * models/default/policy is looked for (the project's own directory unless given).
 */
export async function ensureActivePolicy(
  db: Db,
  { checkpoint, stateDir, root = PROJECT_ROOT }: { checkpoint?: string; stateDir: string; root?: string },
  log: Logger,
): Promise<ModelVersion> {
  if (checkpoint) return registerAndActivate(db, checkpoint, 'checkpoint');
  const active = await getActiveModelVersion(db, 'policy');
  const found = findDefault(stateDir, root);
  if (active && !(active.metrics.source === 'init' && found?.source === 'models/default')) return active;
  if (found) return registerAndActivate(db, found.dir, found.source === 'models/default' ? 'default' : 'init');
  const dir = initModelDir('tiny', { STATE_DIR: stateDir });
  log.warn({ dir }, 'no checkpoint found: creating a randomly initialised tiny model (as `npm run init-model -- --preset tiny` does)');
  const { initCheckpoint, INIT_TEXT } = await import('../model/checkpoint/init-checkpoint.ts');
  const out = await initCheckpoint({ preset: 'tiny', out: dir, text: INIT_TEXT, log: (line) => log.info(line) });
  return registerAndActivate(db, out, 'init');
}

function findDefault(stateDir: string, root: string): ReturnType<typeof resolveDefaultCheckpoint> | undefined {
  try {
    return resolveDefaultCheckpoint({ env: { STATE_DIR: stateDir }, cwd: root });
  } catch (err) {
    if (err instanceof NoCheckpointError) return undefined;
    throw err;
  }
}
