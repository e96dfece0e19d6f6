/**
 * Checkpoint store of the model: a directory with meta.json, model.safetensors, tokenizer.json and
 * optional resume state (optimizer.bin + train_state.json). Model-agnostic: tfjs-core, zod, node only.
 */
export { CheckpointError } from './errors.ts';
export {
  type CheckpointKind,
  type CheckpointMeta,
} from './meta-schema.ts';
export { saveCheckpoint, type SaveCheckpointInput } from './save.ts';
export {
  loadCheckpoint,
  readCheckpointMeta,
  checkpointHasResume,
  type ResumeState,
} from './load.ts';
export { sha256File, checkpointWeightsSha256 } from './hash.ts';
export { migrateCheckpoint } from './migrate.ts';
export { encodeSafetensors, decodeSafetensors } from './safetensors.ts';
export type { RawTensor } from './tensor-file.ts';
