/**
 * Converts a format-1 checkpoint (weights.bin + manifest) in place to the current format
 * (model.safetensors): same tensors, bit for bit, same meta.json apart from the format and the weights
 * entry; every other file is copied unchanged. The directory is replaced atomically.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDirAtomically, writeFileDurable } from './atomic-dir.ts';
import { CheckpointError } from './errors.ts';
import { sha256Bytes } from './hash.ts';
import { readCheckpointMeta, readVerifiedBinary } from './load.ts';
import { CHECKPOINT_FORMAT, LEGACY_WEIGHTS_FILE, META_FILE, WEIGHTS_FILE, checkpointMetaSchema, type CheckpointMeta } from './meta-schema.ts';
import { encodeSafetensors } from './safetensors.ts';
import { unpackTensors } from './tensor-file.ts';

/** Returns the new meta, or null when the checkpoint is already in the current format. */
export async function migrateCheckpoint(dir: string): Promise<CheckpointMeta | null> {
  const meta = await readCheckpointMeta(dir);
  if (meta.format === CHECKPOINT_FORMAT) return null;
  const bytes = await readVerifiedBinary(dir, LEGACY_WEIGHTS_FILE, meta.weights.bytes, meta.weights.sha256);
  const packed = encodeSafetensors(unpackTensors(bytes, meta.weights.tensors), { format: 'pt' });
  const next = checkpointMetaSchema.parse({
    ...meta,
    format: CHECKPOINT_FORMAT,
    weights: { file: WEIGHTS_FILE, sha256: sha256Bytes(packed.bytes), bytes: packed.bytes.length, tensors: packed.tensors },
  });
  const others = (await readdir(dir, { withFileTypes: true })).filter((e) => e.name !== META_FILE && e.name !== LEGACY_WEIGHTS_FILE);
  for (const e of others) if (!e.isFile()) throw new CheckpointError(dir, `cannot migrate: '${e.name}' is not a plain file`);
  await writeDirAtomically(dir, async (tmp) => {
    await writeFileDurable(join(tmp, WEIGHTS_FILE), packed.bytes);
    for (const e of others) await writeFileDurable(join(tmp, e.name), await readFile(join(dir, e.name)));
    await writeFileDurable(join(tmp, META_FILE), JSON.stringify(next, null, 2) + '\n');
  });
  return next;
}
