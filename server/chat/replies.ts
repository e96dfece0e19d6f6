/**
 * Running replies: one or two (A/B) generations of the same prompt through the shared engine batch.
 * Order: engine first (busy is refused before anything is stored); while it takes the request, the
 * new turns and the empty reply rows are written; then `start` and the deltas; at the end the stored
 * reply gets its text, finish reason, token counts, timings and the model version that wrote it. Each reply stops when its
 * signal or the server's shutdown signal aborts; it is stored as "cancelled" with its text so far.
 */
import type { DecodeOptions } from '../../model/decode/options.ts';
import type { ReplyEvent } from '../../model/decode/chat-reply.ts';
import type { ReplyStream } from '../engine/engine-host.ts';
import type { ServerDeps } from '../deps.ts';
import { ApiError, toApiError } from '../errors.ts';
import type { WireFinishReason } from '../protocol.ts';
import { finishReply, storeTurn, type StoredTurn } from './store.ts';
import type { ReplyTarget } from './targets.ts';

export interface ReplyStart {
  conversationId: number;
  parentId: number | null;
  messageId: number;
  modelVersion: number;
}

export interface ReplyResult {
  messageId: number;
  text: string;
  finishReason: WireFinishReason;
  usage: { prompt_tokens: number; completion_tokens: number };
  modelVersion: number;
  timings: { ttft_ms: number; total_ms: number };
}

/** Where a reply's progress goes (a WebSocket, an SSE stream, a JSON response). */
export interface ReplySink {
  start(s: ReplyStart): void;
  delta(text: string): void;
  done(r: ReplyResult): void;
  /** The reply failed after start (it is stored with finish_reason "error"). */
  error(e: ApiError): void;
}

interface ReplySpec {
  decoding: DecodeOptions;
  signal: AbortSignal;
  sink: ReplySink;
}

/** The engine's reasons on the wire: end of turn and stop strings are both "stop". */
function wireFinishReason(reason: 'eot' | 'stop' | 'length' | 'cancelled'): WireFinishReason {
  return reason === 'eot' ? 'stop' : reason;
}

/**
 * Starts the replies, stores them and streams them to their sinks; resolves when all have ended.
 * Throws only before any reply started (then nothing is stored, or the rows written are marked "error").
 */
export async function runReplies(
  deps: ServerDeps,
  req: { sessionId: number; address: string; target: ReplyTarget; specs: ReplySpec[]; api: 'ws' | 'openai'; receivedAt: number },
): Promise<void> {
  const { target, specs } = req;
  if (deps.replies.closing) throw new ApiError('unavailable', 'the server is shutting down');
  const controllers = specs.map((s) => {
    const c = new AbortController();
    const signal = AbortSignal.any([s.signal, deps.replies.signal]);
    if (signal.aborted) c.abort();
    else signal.addEventListener('abort', () => c.abort(), { once: true });
    return c;
  });
  const abortAll = () => controllers.forEach((c) => c.abort());
  const prompt = [...target.context, ...target.newTurns];
  let stored: StoredTurn;
  let versions: number[];
  const streams: ReplyStream[] = [];
  try {
    for (const [i, spec] of specs.entries()) streams.push(deps.engine.reply(prompt, spec.decoding, controllers[i].signal, req.address));
    // The rows are written while the engine takes the request; the version is known once it has.
    const storing = storeTurn(deps.db, req.sessionId, target, specs.map((s) => ({ decoding: s.decoding })));
    const starting = Promise.all(streams.map((s) => s.started));
    const [started, turn] = await Promise.allSettled([starting, storing]);
    if (started.status === 'rejected' || turn.status === 'rejected') {
      if (turn.status === 'fulfilled') await markFailed(deps, turn.value.replyIds);
      throw started.status === 'rejected' ? started.reason : (turn as PromiseRejectedResult).reason;
    }
    stored = turn.value;
    versions = started.value.map((s) => Number(s.version));
    deps.log.debug({ start_ms: Math.round(performance.now() - req.receivedAt), replies: stored.replyIds }, 'reply started');
  } catch (err) {
    abortAll();
    throw err;
  }
  await Promise.all(
    specs.map((spec, i) =>
      pump(deps, streams[i].events, spec, req, {
        conversationId: stored.conversationId,
        parentId: stored.parentId,
        messageId: stored.replyIds[i],
        modelVersion: versions[i],
      }),
    ),
  );
}

async function markFailed(deps: ServerDeps, ids: number[]): Promise<void> {
  for (const id of ids) {
    await finishReply(deps.db, id, { text: '', finishReason: 'error', timings: { ttft_ms: 0, total_ms: 0 } }).catch((err) => deps.log.error({ err }, 'marking a reply failed'));
  }
}

async function pump(
  deps: ServerDeps,
  events: AsyncIterable<ReplyEvent>,
  spec: ReplySpec,
  req: { api: 'ws' | 'openai'; receivedAt: number },
  start: ReplyStart,
): Promise<void> {
  spec.sink.start(start);
  let text = '';
  let first: number | null = null;
  let last = 0;
  let done: Extract<ReplyEvent, { type: 'done' }> | undefined;
  let failure: unknown;
  try {
    for await (const ev of events) {
      if (ev.type === 'done') {
        done = ev;
        continue;
      }
      const now = performance.now();
      if (first === null) {
        first = now;
        deps.metrics.ttft.observe((now - req.receivedAt) / 1000);
      } else {
        deps.metrics.itl.observe((now - last) / 1000);
      }
      last = now;
      text += ev.text;
      spec.sink.delta(ev.text);
    }
  } catch (err) {
    failure = err;
  }
  const end = performance.now();
  const timings = { ttft_ms: Math.round((first ?? end) - req.receivedAt), total_ms: Math.round(end - req.receivedAt) };
  try {
    if (!done) {
      await finishReply(deps.db, start.messageId, { text, finishReason: 'error', timings, modelVersionId: start.modelVersion });
      deps.metrics.generations.inc({ api: req.api, finish_reason: 'error' });
      const error = toApiError(failure ?? new Error('the reply ended without finishing'));
      deps.log.error({ err: failure, message_id: start.messageId }, 'generation failed');
      spec.sink.error(error);
      return;
    }
    const finishReason = wireFinishReason(done.finishReason);
    await finishReply(deps.db, start.messageId, {
      text: done.text,
      finishReason,
      promptTokens: done.promptTokens,
      completionTokens: done.completionTokens,
      timings,
      seed: done.seed,
      decoding: spec.decoding,
      modelVersionId: start.modelVersion,
    });
    deps.metrics.generations.inc({ api: req.api, finish_reason: finishReason });
    deps.metrics.tokens.inc(done.completionTokens);
    spec.sink.done({
      messageId: start.messageId,
      text: done.text,
      finishReason,
      usage: { prompt_tokens: done.promptTokens, completion_tokens: done.completionTokens },
      modelVersion: start.modelVersion,
      timings,
    });
  } catch (err) {
    deps.log.error({ err, message_id: start.messageId }, 'storing the reply failed');
    // At least end the row, so that it does not look like a reply still being generated.
    await markFailed(deps, [start.messageId]);
    spec.sink.error(new ApiError('internal', 'the reply could not be stored'));
  }
}
