/**
 * Where a reply goes and what it answers: resolves a chat or regenerate request into the stored
 * thread it continues, checking that the conversation belongs to the session (`forbidden` otherwise).
 */
import type { ChatMessage } from '../../model/tokenizer/index.ts';
import { conversationThread, findThread, getConversation, getMessageOwner, type Db } from '../../db/index.ts';
import { ApiError } from '../errors.ts';

export interface ReplyTarget {
  /** null: a new conversation of the session. */
  conversationId: number | null;
  /** The stored message that the new turns (or, without new turns, the reply) hang under. */
  parentId: number | null;
  /** Stored turns from the root down to the parent. */
  context: ChatMessage[];
  /** Turns to store before the reply (a chat's user message; /v1's messages). */
  newTurns: ChatMessage[];
}

const turns = (messages: { role: ChatMessage['role']; content: string }[]): ChatMessage[] =>
  messages.map(({ role, content }) => ({ role, content }));

async function ownedMessage(db: Db, sessionId: number, id: number, what: string) {
  const owned = await getMessageOwner(db, id);
  if (!owned) throw new ApiError('not_found', `${what} ${id} does not exist`);
  if (owned.sessionId !== sessionId) throw new ApiError('forbidden', `${what} ${id} belongs to another session`);
  return owned.message;
}

/** Checks that the conversation exists and is the session's. */
export async function ownedConversation(db: Db, sessionId: number, id: number) {
  const conversation = await getConversation(db, id);
  if (!conversation) throw new ApiError('not_found', `conversation ${id} does not exist`);
  if (conversation.session_id !== sessionId) throw new ApiError('forbidden', `conversation ${id} belongs to another session`);
  return conversation;
}

/**
 * A user message and its reply. parent_id given: under it (in its conversation); null: a new root of
 * the conversation; omitted: under the conversation's newest message. No conversation: a new one.
 */
export async function chatTarget(
  db: Db,
  sessionId: number,
  req: { conversation_id?: number; parent_id?: number | null; content: string },
): Promise<ReplyTarget> {
  const newTurns: ChatMessage[] = [{ role: 'user', content: req.content }];
  if (typeof req.parent_id === 'number') {
    const parent = await ownedMessage(db, sessionId, req.parent_id, 'message');
    if (req.conversation_id !== undefined && req.conversation_id !== parent.conversation_id) {
      throw new ApiError('bad_request', `message ${parent.id} is not in conversation ${req.conversation_id}`);
    }
    return { conversationId: parent.conversation_id, parentId: parent.id, context: turns(await findThread(db, parent.id)), newTurns };
  }
  if (req.conversation_id === undefined) {
    if (req.parent_id === null) throw new ApiError('bad_request', 'parent_id null needs a conversation_id');
    return { conversationId: null, parentId: null, context: [], newTurns };
  }
  if (req.parent_id === null) {
    await ownedConversation(db, sessionId, req.conversation_id);
    return { conversationId: req.conversation_id, parentId: null, context: [], newTurns };
  }
  // Under the newest message: ownership, newest message and its thread in one round trip.
  const found = await conversationThread(db, req.conversation_id);
  if (!found) throw new ApiError('not_found', `conversation ${req.conversation_id} does not exist`);
  if (found.sessionId !== sessionId) throw new ApiError('forbidden', `conversation ${req.conversation_id} belongs to another session`);
  return { conversationId: req.conversation_id, parentId: found.thread.at(-1)?.id ?? null, context: turns(found.thread), newTurns };
}

/** Another reply to the message that assistant reply `messageId` answers. */
export async function regenerateTarget(db: Db, sessionId: number, messageId: number): Promise<ReplyTarget> {
  const message = await ownedMessage(db, sessionId, messageId, 'message');
  if (message.role !== 'assistant') throw new ApiError('bad_request', `message ${messageId} is a ${message.role} message; only assistant replies can be regenerated`);
  // A sibling of a client-sent turn would pair the client's text with the model's.
  if (message.origin !== 'generated') throw new ApiError('not_generated', `message ${messageId} was sent by the client (conversation history), not written by the model; only the model's replies can be regenerated`);
  const context = message.parent_id === null ? [] : turns(await findThread(db, message.parent_id));
  return { conversationId: message.conversation_id, parentId: message.parent_id, context, newTurns: [] };
}
