/**
 * Messages between the server's main thread and the engine worker. The worker owns the model, the
 * tokenizer and the batch; the main thread owns sockets, HTTP and the database. Keeping tensors off
 * the main thread means a slow forward pass never delays health checks, rating writes or other
 * streams' I/O.
 */
import type { ReplyEvent } from '../../model/decode/chat-reply.ts';
import type { DecodeOptions } from '../../model/decode/options.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import type { EngineInfo } from '../../model/backend.ts';
import type { InferenceEngineInfo } from '../../model/inference/engine-choice.ts';

export interface LoadedModelInfo {
  version: string;
  checkpointDir: string;
  sha256: string;
  tokenizerHash: string;
  params: number;
  config: Record<string, unknown>;
}

export type ToWorker =
  | { type: 'load'; requestId: number; checkpointDir: string; version: string }
  | { type: 'generate'; id: number; messages: ChatMessage[]; decoding: DecodeOptions; group: string }
  | { type: 'cancel'; id: number }
  | { type: 'stats'; requestId: number }
  /** End the worker thread now, between steps (see stopWorker in engine-host.ts). */
  | { type: 'exit' }
  /** Throw an uncaught error, as a defect in the worker would (crash drills). */
  | { type: 'crash' };

export interface WorkerStats {
  activeVersion: string | null;
  drainingVersions: string[];
  liveRows: number;
  liveRequests: number;
  queued: number;
  steps: number;
  numTensors: number;
  /** Engine time of the models held now (see BatcherStats). */
  prefillMs: number;
  stepMs: number;
  prefills: number;
  prefillRows: number;
  rowSteps: number;
  /** How long the worker thread has been busy since it started (its event loop's active time): forward passes and the per-row decoding work around them. */
  busyMs: number;
  /** Models the inference engine holds (the active one and those still draining); ORT sessions or tfjs models. */
  liveModels: number;
  /** ONNX Runtime models whose sessions are not released yet (0 with the tfjs engine). */
  liveOrtModels: number;
}

export type FromWorker =
  | { type: 'ready'; engine: EngineInfo; inference: InferenceEngineInfo }
  | { type: 'loaded'; requestId: number; info: LoadedModelInfo }
  | { type: 'load_failed'; requestId: number; error: string }
  | { type: 'started'; id: number; version: string; promptTokens: number }
  /** The new events of every reply that advanced in one decode step (one message per step, not per reply). */
  | { type: 'events'; replies: { id: number; events: ReplyEvent[] }[] }
  | { type: 'failed'; id: number; code: 'bad_request' | 'internal' | 'unavailable'; message: string }
  | { type: 'stats'; requestId: number; stats: WorkerStats };
