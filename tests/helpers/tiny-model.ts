/**
 * A tiny real model for tests: a BPE tokenizer and a `tiny` GPT trained for a few dozen steps on the
 * WikiText fixture, so its next-token distributions are peaked like a real model's (a freshly
 * initialised one is nearly uniform). Deterministic: fixed seeds, fixed data order. So it is trained
 * once, not in every test file's process, and kept as a checkpoint in the test cache (test-cache.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine } from '../../model/backend.ts';
import { gptConfig } from '../../model/gpt/config.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { maskedCrossEntropy } from '../../model/gpt/loss.ts';
import { loadModel, saveModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { trainBpe, type Tokenizer } from '../../model/tokenizer/index.ts';
import { cachedDir, cacheKey } from './test-cache.ts';

export const FIXTURE_TEXT = readFileSync(new URL('../../model/assets/init-text.txt', import.meta.url), 'utf8');

let tokenizerCache: Tokenizer | null = null;

export function tinyTokenizer(): Tokenizer {
  tokenizerCache ??= trainBpe(FIXTURE_TEXT.split('\n'), { vocabSize: 512 });
  return tokenizerCache;
}

export async function untrainedTinyModel(overrides: Parameters<typeof gptConfig>[1] = {}): Promise<GPT> {
  await initEngine();
  return new GPT(gptConfig('tiny', { vocabSize: tinyTokenizer().vocabSize, ...overrides }));
}

/** What the trained model depends on besides `steps`: the model and tokenizer code, this file, the text, the engine. */
const SOURCES = ['model/', 'model/assets/init-text.txt', 'tests/helpers/tiny-model.ts', 'package-lock.json'];

const checkpoints = new Map<number, Promise<string>>();

/** The checkpoint directory of the tiny model trained for `steps` steps (read-only: copy it to change it). */
export function trainedTinyCheckpoint(steps = 40): Promise<string> {
  let dir = checkpoints.get(steps);
  if (!dir) {
    dir = cachedDir(`tiny-gpt-${steps}`, cacheKey({ steps }, SOURCES), async (tmp) => {
      const { model, tokenizer } = await trainTinyModel(steps);
      try {
        await saveModel(join(tmp, 'policy'), { model, tokenizer, step: steps });
      } finally {
        model.dispose();
      }
    }).then((entry) => join(entry, 'policy'));
    checkpoints.set(steps, dir);
  }
  return dir;
}

/** A new instance of the tiny model trained for `steps` steps, with its tokenizer; the caller disposes it. */
export async function trainedTinyModel(steps = 40): Promise<{ model: GPT; tokenizer: Tokenizer }> {
  await initEngine();
  const { model, tokenizer } = await loadModel(await trainedTinyCheckpoint(steps), { expectKind: 'policy' });
  return { model, tokenizer };
}

async function trainTinyModel(steps: number): Promise<{ model: GPT; tokenizer: Tokenizer }> {
  await initEngine();
  const tokenizer = tinyTokenizer();
  const model = new GPT(gptConfig('tiny', { vocabSize: tokenizer.vocabSize }));
  const ids = tokenizer.encode(FIXTURE_TEXT.slice(0, 20000));
  const T = model.config.context;
  const B = 8;
  const optimizer = tf.train.adam(3e-3);
  const vars = model.trainableVariables();
  for (let s = 0; s < steps; s++) {
    const x: number[] = [];
    const y: number[] = [];
    for (let b = 0; b < B; b++) {
      const start = ((s * B + b) * 97) % (ids.length - T - 1);
      x.push(...ids.slice(start, start + T));
      y.push(...ids.slice(start + 1, start + T + 1));
    }
    tf.tidy(() => {
      const xs = tf.tensor2d(x, [B, T], 'int32');
      const { grads } = tf.variableGrads(
        () => maskedCrossEntropy(model.lmLogits(model.hidden(xs, true)), tf.tensor1d(y, 'int32'), tf.ones([B * T])),
        vars,
      );
      // Adam declares NamedVariableMap but takes the NamedTensorMap that variableGrads returns.
      optimizer.applyGradients(grads as never);
    });
  }
  optimizer.dispose();
  return { model, tokenizer };
}
