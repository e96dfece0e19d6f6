/**
 * Checkpoint store of the model: a directory with meta.json, weights.bin, tokenizer.json and
 * optional resume state (optimizer.bin + train_state.json). Model-agnostic: tfjs-core, zod, node only.
 */
export { CheckpointError } from './errors.ts';
export {
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
