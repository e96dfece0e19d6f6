// What each client frame does. Generations (chat, regenerate, compare) share one path; every
// request id ends with one `done` or one `error` frame.
import { chooseReply, rateReply } from '../chat/feedback.ts';
import { runReplies, type ReplySink } from '../chat/replies.ts';
import { chatTarget, regenerateTarget, type ReplyTarget } from '../chat/targets.ts';
import { ApiError } from '../errors.ts';
import type { ClientFrame, Decoding, RequestId } from '../protocol.ts';
import { checkPromptSize, resolveDecoding } from '../validation.ts';
import type { Connection } from './connection.ts';

export async function handleFrame(conn: Connection, frame: ClientFrame): Promise<void> {
  const { db, config } = conn.deps;
  const sessionId = conn.session.id;
  switch (frame.type) {
    case 'chat':
      return generate(conn, [frame], () => {
        checkPromptSize(frame.content.length, config.limits);
        return chatTarget(db, sessionId, frame);
      });
    case 'regenerate':
      return generate(conn, [frame], () => regenerateTarget(db, sessionId, frame.message_id));
    case 'compare':
      return generate(conn, [frame.a, frame.b], () => {
        checkPromptSize(frame.content.length, config.limits);
        return chatTarget(db, sessionId, frame);
      });
    case 'cancel':
      conn.cancel(frame.id);
      return;
    case 'rate': {
      conn.deps.limits.feedback({ sessionId, address: conn.address });
      const pairs = await rateReply(conn.deps, sessionId, { messageId: frame.message_id, value: frame.value, reason: frame.reason });
      conn.send({ type: 'rated', ...(frame.id !== undefined && { id: frame.id }), message_id: frame.message_id, value: frame.value, pairs });
      return;
    }
    case 'choose': {
      conn.deps.limits.feedback({ sessionId, address: conn.address });
      const pairs = await chooseReply(conn.deps, sessionId, frame);
      conn.send({ type: 'chosen', ...(frame.id !== undefined && { id: frame.id }), a: frame.a, b: frame.b, choice: frame.choice, pairs });
      return;
    }
  }
}

function wsSink(conn: Connection, id: RequestId): ReplySink {
  return {
    start: (s) => conn.send({ type: 'start', id, conversation_id: s.conversationId, parent_id: s.parentId, message_id: s.messageId, model_version: s.modelVersion }),
    delta: (text) => conn.send({ type: 'delta', id, text }),
    done: (r) =>
      conn.send({ type: 'done', id, message_id: r.messageId, text: r.text, finish_reason: r.finishReason, usage: r.usage, model_version: r.modelVersion, timings: r.timings }),
    error: (e) => conn.sendError(e, id),
  };
}

/** Runs one reply per side (two for a compare) of the same new turn. */
async function generate(conn: Connection, sides: { id: RequestId; decoding?: Decoding }[], resolveTarget: () => Promise<ReplyTarget>): Promise<void> {
  const receivedAt = performance.now();
  const { deps } = conn;
  const controllers: AbortController[] = [];
  let release = () => {};
  try {
    if (sides.length === 2 && JSON.stringify(sides[0].id) === JSON.stringify(sides[1].id)) {
      throw new ApiError('bad_request', 'the two sides of a compare need different request ids');
    }
    for (const side of sides) controllers.push(conn.begin(side.id));
    const decodings = sides.map((s) => resolveDecoding(s.decoding, deps.config.limits));
    release = deps.limits.acquire({ sessionId: conn.session.id, address: conn.address }, sides.length);
    // Tracked from here, not from the rows' insertion: shutdown waits for a request still resolving
    // its conversation, which would otherwise write rows after the database closed.
    await deps.replies.track(
      (async () => {
        const target = await resolveTarget();
        const specs = sides.map((s, i) => ({ decoding: decodings[i], signal: controllers[i].signal, sink: wsSink(conn, s.id) }));
        await runReplies(deps, { sessionId: conn.session.id, address: conn.address, target, specs, api: 'ws', receivedAt });
      })(),
    );
  } catch (err) {
    for (const side of sides) conn.sendError(err, side.id);
  } finally {
    release();
    controllers.forEach((c, i) => conn.end(sides[i].id, c));
  }
}
