// Ratings and A/B choices from a session, on replies the model wrote in its own conversations only.
import { getMessageOwner, notModelReply, recordComparison, recordRating } from '../../db/index.ts';
import type { ServerDeps } from '../deps.ts';
import { ApiError } from '../errors.ts';
import type { Choice } from '../protocol.ts';

async function ownReply(deps: ServerDeps, sessionId: number, id: number) {
  const owned = await getMessageOwner(deps.db, id);
  if (!owned) throw new ApiError('not_found', `message ${id} does not exist`);
  if (owned.sessionId !== sessionId) throw new ApiError('forbidden', `message ${id} belongs to another session`);
  if (owned.message.role !== 'assistant') throw new ApiError('bad_request', `message ${id} is a ${owned.message.role} message; only assistant replies are rated`);
  const problem = notModelReply(owned.message);
  if (problem) throw new ApiError('not_generated', `${problem}; only finished replies of the model are rated or chosen`);
  return owned.message;
}

/** Rates a reply (0 removes the rating); returns the pairs its ratings now imply. */
export async function rateReply(
  deps: ServerDeps,
  sessionId: number,
  { messageId, value, reason }: { messageId: number; value: -1 | 0 | 1; reason?: string },
): Promise<number[]> {
  await ownReply(deps, sessionId, messageId);
  const { pairIds } = await recordRating(deps.db, { sessionId, messageId, value, reason: reason ?? null });
  deps.metrics.ratingsRecorded.inc({ value: String(value) });
  return pairIds;
}

/** Records the verdict on two replies to the same message; returns the pair ids it implies. */
export async function chooseReply(
  deps: ServerDeps,
  sessionId: number,
  { a, b, choice }: { a: number; b: number; choice: Choice },
): Promise<number[]> {
  const [ra, rb] = [await ownReply(deps, sessionId, a), await ownReply(deps, sessionId, b)];
  if (ra.parent_id === null || ra.parent_id !== rb.parent_id) {
    throw new ApiError('bad_request', `messages ${a} and ${b} are not replies to the same message`);
  }
  const { pairIds } = await recordComparison(deps.db, { sessionId, promptMessageId: ra.parent_id, aMessageId: a, bMessageId: b, choice });
  deps.metrics.comparisonsRecorded.inc({ choice });
  return pairIds;
}
