/**
 * A tiny real model for tests: a BPE tokenizer and a `tiny` GPT trained for a few dozen steps on the
 * WikiText fixture, so its next-token distributions are peaked like a real model's (a freshly
 * initialised one is nearly uniform). Deterministic: fixed seeds, fixed data order.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { initEngine } from '../../model/backend.ts';
import { gptConfig } from '../../model/gpt/config.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { maskedCrossEntropy } from '../../model/gpt/loss.ts';
import { trainBpe, type Tokenizer } from '../../model/tokenizer/index.ts';

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

export async function trainedTinyModel(steps = 40): Promise<{ model: GPT; tokenizer: Tokenizer }> {
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
