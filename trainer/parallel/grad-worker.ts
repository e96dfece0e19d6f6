/**
 * A gradient worker of data-parallel training: its own tfjs engine and a replica of the model. For
 * each step it takes the current weights and a shard of the batch, and returns the shard's mean loss
 * and its gradients. It never updates weights: the training thread owns the optimizer.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine } from '../../model/backend.ts';
import { GPT } from '../../model/gpt/gpt.ts';
import { shardLossAndGrads } from './shard-grads.ts';
import type { FromGradWorker, GradWorkerData, ToGradWorker } from './messages.ts';

const port = parentPort!;
const { config } = workerData as GradWorkerData;
const send = (msg: FromGradWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

await initEngine({ log: () => {} });
const model = new GPT(config);
const vars = model.trainableVariables();

port.on('message', (msg: ToGradWorker) => {
  try {
    if (msg.weights.length !== vars.length) throw new Error(`got ${msg.weights.length} weight arrays for ${vars.length} variables`);
    tf.tidy(() => vars.forEach((v, i) => v.assign(tf.tensor(msg.weights[i], v.shape, 'float32'))));
    const { loss, grads } = shardLossAndGrads(model, vars, msg.batch);
    const arrays = vars.map((v) => grads[v.name].dataSync() as Float32Array);
    const lossValue = loss.dataSync()[0];
    tf.dispose([loss, ...Object.values(grads)]);
    send({ type: 'grads', loss: lossValue, grads: arrays }, arrays.map((a) => a.buffer as ArrayBuffer));
  } catch (err) {
    send({ type: 'failed', error: (err as Error).message });
  }
});
send({ type: 'ready' });
