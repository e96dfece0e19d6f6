/**
 * `train` and `decode`: the model alone on this process's engine, through bench/lib/model-measure.ts (the
 * same measurements as `npm run bench:model`): a randomly initialised model of the preset, random ids.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, type EngineInfo } from '../../model/backend.ts';
import { idSource, measureDecode, measureTrain, type DecodeFigures, type TrainFigures } from '../lib/model-measure.ts';
import { countParams, gptConfig, type PresetName } from '../../model/gpt/config.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { defaultThreadCounts, measureDataParallel, type ParallelFigure } from '../lib/parallel-measure.ts';

interface ModelSections {
  engine: EngineInfo;
  params: number;
  /** `data_parallel`: the training loop's step (AdamW) split across 1..cores engines. */
  train?: TrainFigures & { runs: number; data_parallel: ParallelFigure[] };
  decode?: DecodeFigures & { runs: number };
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
    if (which.decode) out.decode = { ...(await measureDecode(model, cfg, runs, ids, { log })), runs };
  } finally {
    model.dispose();
  }
  const leaked = tf.memory().numTensors - before;
  if (leaked !== 0) throw new Error(`the model measurements leaked ${leaked} tensors`);
  return out;
}
