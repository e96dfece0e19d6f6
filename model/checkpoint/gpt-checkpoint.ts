/**
 * A GPT with its tokenizer, to and from a checkpoint directory. The checkpoint store knows nothing of
 * models; this is where config, tokenizer hash, names and shapes are tied together and checked.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, loadCheckpoint, readCheckpointMeta, saveCheckpoint, type CheckpointKind, type CheckpointMeta, type ResumeState } from './index.ts';
import { parseGPTConfig } from '../gpt/config.ts';
import { GPT } from '../gpt/gpt.ts';
import { Tokenizer } from '../tokenizer/index.ts';

export interface LoadedModel {
  model: GPT;
  tokenizer: Tokenizer;
  meta: CheckpointMeta;
  resume?: ResumeState;
}

export interface SaveModelInput {
  model: GPT;
  tokenizer: Tokenizer;
  kind?: CheckpointKind;
  step?: number;
  parent?: string | null;
  metrics?: Record<string, number>;
  extra?: Record<string, unknown>;
  resume?: ResumeState;
}

/** Writes model + tokenizer atomically (see model/checkpoint). */
export async function saveModel(dir: string, input: SaveModelInput): Promise<CheckpointMeta> {
  const { model, tokenizer } = input;
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new CheckpointError(dir, `tokenizer has ${tokenizer.vocabSize} ids but the model's vocabSize is ${model.config.vocabSize}`);
  }
  const kind = input.kind ?? (model.hasScalarHead ? 'reward' : 'policy');
  const weights = [...model.namedWeights()].map(([name, tensor]) => ({ name, tensor: tensor as tf.Tensor }));
  return saveCheckpoint(dir, {
    kind,
    config: model.config,
    tokenizerHash: tokenizer.hash,
    tokenizerJson: tokenizer.toJSON(),
    step: input.step ?? 0,
    parent: input.parent ?? null,
    metrics: input.metrics,
    extra: input.extra,
    weights,
    resume: input.resume,
  });
}

/**
 * Loads a checkpoint into a new GPT. Verifies the weights' sha256, that the tokenizer file is the one
 * the model was trained with (hash), and every name and shape, before any variable is touched.
 */
export async function loadModel(dir: string, opts: { prefix?: string; withResume?: boolean; expectKind?: CheckpointKind } = {}): Promise<LoadedModel> {
  const meta = await readCheckpointMeta(dir);
  if (opts.expectKind && meta.kind !== opts.expectKind) throw new CheckpointError(dir, `is a ${meta.kind} checkpoint, expected ${opts.expectKind}`);
  let config;
  try {
    config = parseGPTConfig(meta.config);
  } catch (err) {
    throw new CheckpointError(dir, (err as Error).message);
  }
  // Build the model first only to learn the expected names/shapes; it is disposed on any failure.
  const model = new GPT(config, { prefix: opts.prefix, scalarHead: meta.kind !== 'policy' });
  try {
    const loaded = await loadCheckpoint(dir, { expect: { names: model.weightShapes() }, withResume: opts.withResume });
    try {
      let tokenizer: Tokenizer;
      try {
        tokenizer = Tokenizer.fromJSON(loaded.tokenizerJson);
      } catch (err) {
        throw new CheckpointError(dir, `tokenizer.json: ${(err as Error).message}`);
      }
      if (tokenizer.hash !== loaded.meta.tokenizer_hash) {
        throw new CheckpointError(dir, `tokenizer.json has hash ${tokenizer.hash.slice(0, 12)}…, but the model was trained with ${loaded.meta.tokenizer_hash.slice(0, 12)}…`);
      }
      if (tokenizer.vocabSize !== config.vocabSize) {
        throw new CheckpointError(dir, `tokenizer has ${tokenizer.vocabSize} ids but the config's vocabSize is ${config.vocabSize}`);
      }
      model.loadWeights(loaded.weights);
      return { model, tokenizer, meta: loaded.meta, resume: loaded.resume };
    } catch (err) {
      for (const { tensor } of loaded.resume?.tensors ?? []) tensor.dispose();
      throw err;
    } finally {
      for (const t of loaded.weights.values()) t.dispose();
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
}
