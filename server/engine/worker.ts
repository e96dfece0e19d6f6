/**
 * The engine worker: loads checkpoints, runs every generation through a continuous batch, and swaps
 * models without dropping streams. Requests already running finish on the weights they started with
 * (each reports its version); new requests go to the newest model; an old model is disposed once its
 * last stream ends.
 *
 * Checkpoints are read into a tfjs model (which checks names, shapes and hashes); generation runs on
 * the inference engine chosen once at start (ONNX Runtime by default, see model/inference): with ort,
 * the new session is built beside the old one from the loaded weights and the tfjs copy is freed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { initEngine } from '../../model/backend.ts';
import { Batcher } from '../../model/decode/batcher.ts';
import { chatPrompt, ReplyText, type ReplyEvent } from '../../model/decode/chat-reply.ts';
import { createDecoder } from '../../model/decode/generate.ts';
import { countParams } from '../../model/gpt/config.ts';
import { loadModel } from '../../model/checkpoint/gpt-checkpoint.ts';
import { inferenceModel, initInference } from '../../model/inference/engine-choice.ts';
import type { InferenceModel } from '../../model/inference/inference-model.ts';
import { liveOrtModels } from '../../model/ort/live-sessions.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
import type { FromWorker, LoadedModelInfo, ToWorker, WorkerStats } from './messages.ts';

interface Served {
  info: LoadedModelInfo;
  model: InferenceModel;
  tokenizer: Tokenizer;
  batcher: Batcher;
  /** Requests still running on this model. */
  live: number;
}

const port = parentPort!;
const { maxRows } = workerData as { maxRows: number };

/**
 * Events wait here until the step that produced them has dispatched every row, then go as one
 * message: at 8 streams that is one postMessage per step instead of eight. Any other message flushes
 * them first, so the main thread sees everything in the order it happened.
 */
let outbox: { id: number; events: ReplyEvent[] }[] = [];

function flushEvents(): void {
  if (outbox.length === 0) return;
  const replies = outbox;
  outbox = [];
  port.postMessage({ type: 'events', replies } satisfies FromWorker);
}

function queueEvents(id: number, events: ReplyEvent[]): void {
  // The batcher hands out a step's events synchronously; the microtask runs once it awaits.
  if (outbox.length === 0) queueMicrotask(flushEvents);
  outbox.push({ id, events });
}

const send = (msg: FromWorker) => {
  flushEvents();
  port.postMessage(msg);
};

let active: Served | null = null;
const draining = new Set<Served>();
const controllers = new Map<number, AbortController>();

function retire(s: Served): void {
  if (s !== active && s.live === 0) {
    draining.delete(s);
    s.model.dispose();
  }
}

/** Loads and checks a checkpoint: sha256, names/shapes (loadModel), then a warm-up forward that must be finite. */
async function load(checkpointDir: string, version: string): Promise<Served> {
  const loaded = await loadModel(checkpointDir, { expectKind: 'policy' });
  const { tokenizer, meta } = loaded;
  let model: InferenceModel;
  try {
    model = await inferenceModel(loaded.model, inference.name);
  } finally {
    // With ort the session holds its own copy of the weights; the tfjs one was only the loader's.
    if (inference.name !== 'tfjs') loaded.model.dispose();
  }
  try {
    const s = tokenizer.special;
    const { logits, cache } = await model.prefill([[s.bos, s.user, s.eot, s.assistant]]);
    const next = await model.step(cache, [s.eot]);
    next.cache.dispose();
    if (![...logits[0], ...next.logits[0]].every(Number.isFinite)) throw new Error('warm-up forward produced non-finite logits');
  } catch (err) {
    model.dispose();
    throw err;
  }
  const info: LoadedModelInfo = {
    version,
    checkpointDir,
    sha256: meta.weights.sha256,
    tokenizerHash: tokenizer.hash,
    params: countParams(model.config),
    config: { ...model.config },
  };
  return { info, model, tokenizer, batcher: new Batcher(model, maxRows), live: 0 };
}

async function generate(msg: Extract<ToWorker, { type: 'generate' }>): Promise<void> {
  const served = active;
  if (!served) {
    send({ type: 'failed', id: msg.id, code: 'unavailable', message: 'no model is loaded' });
    return;
  }
  const controller = new AbortController();
  controllers.set(msg.id, controller);
  served.live += 1;
  try {
    const prompt = chatPrompt(served.model.config, served.tokenizer, msg.messages, msg.decoding);
    const text = new ReplyText(served.tokenizer, msg.decoding.stop, prompt.ids.length);
    // Replies on the wire carry no log-probability: not computing it saves a pass over the vocabulary per row per step.
    const decoder = createDecoder(prompt.ids, msg.decoding, { ...prompt.control, logprob: false });
    send({ type: 'started', id: msg.id, version: served.info.version, promptTokens: prompt.ids.length });
    await served.batcher.run({
      prompt: prompt.ids,
      decoder,
      group: msg.group,
      signal: controller.signal,
      onEvents: (events) => {
        const out = events.flatMap((ev) => text.push(ev));
        if (out.length > 0) queueEvents(msg.id, out);
        // A stop string ended the text: stop computing too.
        if (text.isDone) controller.abort();
      },
    });
  } catch (err) {
    send({ type: 'failed', id: msg.id, code: 'internal', message: err instanceof Error ? err.message : String(err) });
  } finally {
    controllers.delete(msg.id);
    served.live -= 1;
    retire(served);
  }
}

function stats(): WorkerStats {
  const all = [active, ...draining].filter((s): s is Served => s !== null);
  const sum = (k: 'liveRows' | 'liveRequests' | 'queued' | 'steps' | 'prefillMs' | 'stepMs' | 'prefills' | 'prefillRows' | 'rowSteps') => all.reduce((a, s) => a + s.batcher.stats()[k], 0);
  return {
    activeVersion: active?.info.version ?? null,
    drainingVersions: [...draining].map((s) => s.info.version),
    liveRows: sum('liveRows'),
    liveRequests: sum('liveRequests'),
    queued: sum('queued'),
    steps: sum('steps'),
    prefillMs: sum('prefillMs'),
    stepMs: sum('stepMs'),
    prefills: sum('prefills'),
    prefillRows: sum('prefillRows'),
    rowSteps: sum('rowSteps'),
    numTensors: tf.memory().numTensors,
    busyMs: performance.eventLoopUtilization().active,
    liveModels: all.length,
    liveOrtModels: liveOrtModels(),
  };
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'load':
      load(msg.checkpointDir, msg.version).then(
        (served) => {
          const previous = active;
          active = served;
          if (previous) {
            draining.add(previous);
            retire(previous);
          }
          send({ type: 'loaded', requestId: msg.requestId, info: served.info });
        },
        (err: unknown) => send({ type: 'load_failed', requestId: msg.requestId, error: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'generate':
      void generate(msg);
      break;
    case 'cancel':
      controllers.get(msg.id)?.abort();
      break;
    case 'stats':
      send({ type: 'stats', requestId: msg.requestId, stats: stats() });
      break;
    case 'exit':
      // A message runs between decode steps, never inside ONNX Runtime's synchronous run.
      process.exit(0);
    case 'crash':
      throw new Error('crash drill: the engine worker threw');
  }
});

const engine = await initEngine();
const inference = await initInference();
send({ type: 'ready', engine, inference });
