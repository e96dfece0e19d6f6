/**
 * `train` and `decode`: the model alone, through bench/lib/model-measure.ts (the same measurements as
 * `npm run bench:model`): a randomly initialised model of the preset, random ids. Training runs on
 * tfjs; decode on the serving inference engine (ort by default), with tfjs's figures beside it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, type EngineInfo } from '../../model/backend.ts';
import { idSource, measureDecode, measureTrain, type DecodeFigures, type TrainFigures } from '../lib/model-measure.ts';
import { countParams, gptConfig, type PresetName } from '../../model/gpt/config.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { inferenceModel, initInference } from '../../model/inference/engine-choice.ts';
import { defaultThreadCounts, measureDataParallel, type ParallelFigure } from '../lib/parallel-measure.ts';

export interface ModelSections {
  engine: EngineInfo;
  params: number;
  /** `data_parallel`: the training loop's step (AdamW) split across 1..cores engines. */
  train?: TrainFigures & { runs: number; data_parallel: ParallelFigure[] };
  decode?: DecodeFigures & { runs: number; inference_engine: string; tfjs: DecodeFigures | null };
}

export async function benchModel(preset: PresetName, runs: number, which: { train: boolean; decode: boolean }, log: (line: string) => void): Promise<ModelSections> {
  const engine = await initEngine({ log });
  const cfg = gptConfig(preset);
  const before = tf.memory().numTensors;
  const model = new GPT(cfg);
  const ids = idSource(1234, cfg.vocabSize);
  const out: ModelSections = { engine, params: countParams(cfg) };
  try {
    if (which.train) {
      const single = measureTrain(model, cfg, runs, ids, log);
      out.train = { ...single, runs, data_parallel: await measureDataParallel(model, ids, { runs, threads: defaultThreadCounts(), log }) };
    }
    if (which.decode) {
      const inference = await initInference({ log });
      const tfjs = await measureDecode(model, cfg, runs, ids, { log });
      if (inference.name === 'tfjs') {
        out.decode = { ...tfjs, runs, inference_engine: 'tfjs', tfjs: null };
      } else {
        const serving = await inferenceModel(model, inference.name);
        try {
          out.decode = { ...(await measureDecode(serving, cfg, runs, ids, { log })), runs, inference_engine: inference.name, tfjs };
        } finally {
          serving.dispose();
        }
      }
    }
  } finally {
    model.dispose();
  }
  const leaked = tf.memory().numTensors - before;
  if (leaked !== 0) throw new Error(`the model measurements leaked ${leaked} tensors`);
  return out;
}
