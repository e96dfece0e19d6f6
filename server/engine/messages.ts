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
  | { type: 'stats'; requestId: number };

export interface WorkerStats {
  activeVersion: string | null;
  drainingVersions: string[];
  liveRows: number;
  liveRequests: number;
  queued: number;
  steps: number;
  numTensors: number;
}

export type FromWorker =
  | { type: 'ready'; engine: EngineInfo }
  | { type: 'loaded'; requestId: number; info: LoadedModelInfo }
  | { type: 'load_failed'; requestId: number; error: string }
  | { type: 'started'; id: number; version: string; promptTokens: number }
  | { type: 'events'; id: number; events: ReplyEvent[] }
  | { type: 'failed'; id: number; code: 'bad_request' | 'internal' | 'unavailable'; message: string }
  | { type: 'stats'; requestId: number; stats: WorkerStats };
