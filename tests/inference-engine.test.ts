/**
 * The inference engine is chosen once per process: ort by default where it loads, `INFERENCE_ENGINE`
 * forces one, and a forced engine that cannot start is an error (no silent fallback to tfjs).
 * The order of the tests matters: the first successful choice is the process's.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initInference, inferenceEngineInfo } from '../model/inference/engine-choice.ts';

describe('inference engine choice', () => {
  test('an unknown INFERENCE_ENGINE is refused naming the allowed ones', async () => {
    await assert.rejects(initInference({ env: { INFERENCE_ENGINE: 'onnx' }, log: () => {} }), /INFERENCE_ENGINE=onnx is not one of ort, tfjs/);
  });

  test('a forced ort that cannot start is an error, not a fallback to tfjs', async () => {
    await assert.rejects(
      initInference({ env: { INFERENCE_ENGINE: 'ort', ORT_THREADS: '0' }, log: () => {} }),
      /inference engine 'ort' could not start: ORT_THREADS=0 must be an integer in \[1, 64\]/,
    );
    await assert.rejects(
      initInference({ env: { INFERENCE_ENGINE: 'ort', ORT_PROVIDER: 'tpu' }, log: () => {} }),
      /inference engine 'ort' could not start: ORT_PROVIDER=tpu is not one of cpu, cuda/,
    );
    assert.equal(inferenceEngineInfo(), null);
  });

  test('by default ort is chosen, logged once, and later calls get the same choice', async () => {
    const lines: string[] = [];
    const info = await initInference({ env: {}, log: (l) => lines.push(l) });
    assert.deepEqual({ name: info.name, reason: info.reason, provider: info.provider, threads: info.threads }, { name: 'ort', reason: 'auto', provider: 'cpu', threads: 1 });
    assert.equal(lines.length, 1);
    assert.match(lines[0], /inference on onnxruntime-node \d+\.\d+\.\d+, provider cpu, 1 thread/);
    assert.equal(await initInference({ env: {}, log: (l) => lines.push(l) }), info);
    assert.equal(lines.length, 1);
    await assert.rejects(initInference({ engine: 'tfjs' }), /inference engine already started as ort; cannot switch to tfjs/);
  });
});
