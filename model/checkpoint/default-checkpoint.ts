/**
 * Where state lives and which checkpoint to use when none is named (CLI `generate`, later the server).
 *
 * Order: `$CHECKPOINT` if set (it must exist), else the shipped `models/default/policy` if it exists, else
 * `${STATE_DIR ?? './.state'}/models/init-tiny` (what `npm run init-model -- --preset tiny` writes).
 * Relative paths resolve against `cwd` (the process's working directory by default).
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Where the trained default chat model is shipped (written by `npm run pipeline`). */
export const SHIPPED_POLICY_DIR = 'models/default/policy';

/** The command that creates the fallback checkpoint. */
const INIT_MODEL_HINT = 'npm run init-model -- --preset tiny';

/** Where runtime state (models, the embedded database) is written when STATE_DIR is not set. */
export const DEFAULT_STATE_DIR = './.state';

/** Directory under which runtime state (models, databases) is written. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.STATE_DIR;
  return dir !== undefined && dir !== '' ? dir : DEFAULT_STATE_DIR;
}

/** Default output directory of `init-model` for a preset. */
export function initModelDir(preset: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), 'models', `init-${preset}`);
}

/** No checkpoint given and none of the default locations exists. */
export class NoCheckpointError extends Error {
  override readonly name = 'NoCheckpointError';
}

interface DefaultCheckpoint {
  /** The checkpoint directory, as resolved (absolute). */
  dir: string;
  /** Which rule picked it. */
  source: 'env' | 'models/default' | 'state';
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Resolves the default checkpoint directory; throws NoCheckpointError saying what was tried. */
export function resolveDefaultCheckpoint(opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): DefaultCheckpoint {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const fromEnv = env.CHECKPOINT;
  if (fromEnv !== undefined && fromEnv !== '') {
    const dir = resolve(cwd, fromEnv);
    if (!isDir(dir)) throw new NoCheckpointError(`CHECKPOINT=${fromEnv} is not a directory`);
    return { dir, source: 'env' };
  }
  const modelsDefault = resolve(cwd, SHIPPED_POLICY_DIR);
  if (isDir(modelsDefault)) return { dir: modelsDefault, source: 'models/default' };
  const init = resolve(cwd, initModelDir('tiny', env));
  if (isDir(init)) return { dir: init, source: 'state' };
  throw new NoCheckpointError(
    `no checkpoint found (tried $CHECKPOINT, ${SHIPPED_POLICY_DIR}, ${initModelDir('tiny', env)}); ` +
      `run \`${INIT_MODEL_HINT}\` or pass --checkpoint DIR`,
  );
}
