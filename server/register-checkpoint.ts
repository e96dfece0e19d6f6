/**
 * Registering a checkpoint made elsewhere (imported from Hugging Face, trained on a GPU cluster) as a
 * candidate model version, which the admin API or the dashboard then activates with the usual hot swap.
 * Only directories under the checkpoint root (CHECKPOINT_DIR, default STATE_DIR/checkpoints) are
 * accepted, symlinks resolved, so the database never points servers at arbitrary paths. The checkpoint
 * is verified in full first (sha256, names and shapes, tokenizer) by loading it.
 */
import { realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { loadModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { getActiveModelVersion, insertModelVersion, type Db, type ModelVersion } from '../db/index.ts';

/** The registered-checkpoints root: CHECKPOINT_DIR, else STATE_DIR/checkpoints, else ./.state/checkpoints. */
export function checkpointRoot(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return resolve(cwd, env.CHECKPOINT_DIR || join(env.STATE_DIR || './.state', 'checkpoints'));
}

class RegisterError extends Error {
  override readonly name = 'RegisterError';
}

async function real(path: string, what: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    throw new RegisterError(`${what} ${path} does not exist (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Verifies the checkpoint and inserts it as a candidate version (parent: the active one of its kind). */
export async function registerCheckpoint(db: Db, dir: string, root: string): Promise<ModelVersion> {
  const rootReal = await real(root, 'the checkpoint root (CHECKPOINT_DIR)');
  const dirReal = await real(resolve(dir), 'checkpoint');
  if (!dirReal.startsWith(rootReal + sep)) {
    throw new RegisterError(`${dirReal} is not under the checkpoint root ${rootReal} (CHECKPOINT_DIR); copy or import it there first`);
  }
  let loaded;
  try {
    loaded = await loadModel(dirReal);
  } catch (err) {
    throw new RegisterError((err as Error).message);
  }
  const { meta } = loaded;
  loaded.model.dispose();
  if (meta.kind !== 'policy' && meta.kind !== 'reward') throw new RegisterError(`${dirReal} is a ${meta.kind} checkpoint; versions are policies or reward models`);
  const active = await getActiveModelVersion(db, meta.kind);
  return insertModelVersion(db, {
    kind: meta.kind,
    checkpointPath: dirReal,
    sha256: meta.weights.sha256,
    parentId: active?.id ?? null,
    metrics: { source: 'register', step: meta.step, ...meta.metrics },
  });
}
