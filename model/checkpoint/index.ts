/**
 * Checkpoint store of the model: a directory with meta.json, model.safetensors, tokenizer.json and
 * optional resume state (optimizer.bin + train_state.json). Model-agnostic: tfjs-core, zod, node only.
 */
export { CheckpointError } from './errors.ts';
export {
  CHECKPOINT_FORMAT,
  META_FILE,
  WEIGHTS_FILE,
  TOKENIZER_FILE,
  OPTIMIZER_FILE,
  TRAIN_STATE_FILE,
  checkpointMetaSchema,
  trainStateSchema,
  type CheckpointKind,
  type CheckpointMeta,
  type TensorDtype,
  type TensorEntry,
  type WeightsManifest,
  type OptimizerManifest,
  type TrainStateFile,
} from './meta-schema.ts';
export { saveCheckpoint, type SaveCheckpointInput, type NamedTensor } from './save.ts';
export {
  loadCheckpoint,
  readCheckpointMeta,
  checkpointHasResume,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  type ResumeState,
} from './load.ts';
export { sha256File, checkpointWeightsSha256 } from './hash.ts';
export { migrateCheckpoint } from './migrate.ts';
export { encodeSafetensors, decodeSafetensors } from './safetensors.ts';
export type { RawTensor } from './tensor-file.ts';
