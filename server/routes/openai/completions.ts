/**
 * POST /v1/chat/completions (stream and non-stream) and GET /v1/models, OpenAI-compatible. The
 * exchange is stored as a new conversation of the caller's session (Bearer token = the session token,
 * i.e. the OpenAI client's apiKey); the reply's message id comes back as `message_id` (and in `id`,
 * `chatcmpl-<message_id>`) so that it can be rated with POST /api/messages/:id/rating.
 * Refusals that happen before the reply starts (busy, limits, bad options) are plain HTTP errors,
 * also when `stream` is true.
 */
import type { Context } from 'hono';
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { runReplies, type ReplyResult, type ReplySink, type ReplyStart } from '../../chat/replies.ts';
import type { AppEnv, ServerDeps } from '../../deps.ts';
import { ApiError, errorBody } from '../../errors.ts';
import { sessionAuth } from '../../middleware/session-auth.ts';
import { checkPromptSize, resolveDecoding } from '../../validation.ts';
import { readJson } from '../body.ts';
import { chatMessages, CompletionRequestSchema, decodingOf } from './schema.ts';

const MODEL_ID = 'rlhf-chat';

type Event = { type: 'delta'; text: string } | { type: 'done'; result: ReplyResult } | { type: 'error'; error: ApiError };

/** Sink events in, async iteration out (the SSE writer may start after the first deltas arrived). */
class EventChannel implements ReplySink {
  private readonly items: Event[] = [];
  private wake: (() => void) | null = null;
  start!: (s: ReplyStart) => void;
  readonly started = new Promise<ReplyStart>((resolve) => (this.start = resolve));
  delta(text: string) {
    this.push({ type: 'delta', text });
  }
  done(result: ReplyResult) {
    this.push({ type: 'done', result });
  }
  error(error: ApiError) {
    this.push({ type: 'error', error });
  }
  private push(e: Event) {
    this.items.push(e);
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Event> {
    for (;;) {
      while (this.items.length > 0) {
        const e = this.items.shift()!;
        yield e;
        if (e.type !== 'delta') return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }
}

const openaiReason = (r: ReplyResult['finishReason']) => (r === 'length' ? 'length' : 'stop');

export function openaiRoutes(deps: ServerDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get('/models', (c) =>
    c.json({ object: 'list', data: [{ id: MODEL_ID, object: 'model', created: 0, owned_by: 'rlhf-chat', version: deps.models.current?.id ?? null }] }),
  );
  app.post('/chat/completions', sessionAuth(deps), (c) => completion(deps, c));
  return app;
}

async function completion(deps: ServerDeps, c: Context<AppEnv>): Promise<Response> {
  const receivedAt = performance.now();
  const req = await readJson(c, CompletionRequestSchema);
  const messages = chatMessages(req);
  checkPromptSize(messages.reduce((n, m) => n + m.content.length, 0), deps.config.limits);
  const decoding = resolveDecoding(decodingOf(req), deps.config.limits);
  const session = c.get('session');
  const address = c.get('clientAddress');
  const release = deps.limits.acquire({ sessionId: session.id, address });
  const controller = new AbortController();
  c.req.raw.signal.addEventListener('abort', () => controller.abort(), { once: true });
  const channel = new EventChannel();
  const run = deps.replies
    .track(runReplies(deps, { sessionId: session.id, address, target: { conversationId: null, parentId: null, context: [], newTurns: messages }, specs: [{ decoding, signal: controller.signal, sink: channel }], api: 'openai', receivedAt }))
    .finally(release);
  run.catch(() => {}); // awaited below; its pre-start errors surface through the race
  let start: ReplyStart;
  try {
    start = await Promise.race([channel.started, run.then(() => channel.started)]);
  } catch (err) {
    release();
    throw err;
  }
  const created = Math.floor(Date.now() / 1000);
  const base = {
    id: `chatcmpl-${start.messageId}`,
    created,
    model: MODEL_ID,
    system_fingerprint: `v${start.modelVersion}`,
    message_id: start.messageId,
    conversation_id: start.conversationId,
    model_version: start.modelVersion,
  };

  if (!req.stream) {
    for await (const e of channel) {
      if (e.type === 'error') throw e.error;
      if (e.type === 'done') {
        await run;
        const { usage } = e.result;
        return c.json({
          ...base,
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content: e.result.text }, logprobs: null, finish_reason: openaiReason(e.result.finishReason) }],
          usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
        });
      }
    }
    throw new ApiError('internal', 'the reply ended without finishing');
  }

  return streamSSE(c, async (sse) => {
    sse.onAbort(() => controller.abort());
    const chunk = (delta: object, finish_reason: string | null) => ({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason }] });
    await sse.writeSSE({ data: JSON.stringify(chunk({ role: 'assistant', content: '' }, null)) });
    for await (const e of channel) {
      if (e.type === 'delta') {
        await sse.writeSSE({ data: JSON.stringify(chunk({ content: e.text }, null)) });
      } else if (e.type === 'error') {
        await sse.writeSSE({ data: JSON.stringify(errorBody(e.error)) });
      } else {
        await sse.writeSSE({ data: JSON.stringify(chunk({}, openaiReason(e.result.finishReason))) });
        if (req.stream_options?.include_usage) {
          const { usage } = e.result;
          await sse.writeSSE({ data: JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }) });
        }
      }
    }
    await sse.writeSSE({ data: '[DONE]' });
    await run;
  });
}
