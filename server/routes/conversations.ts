// A session's conversations: list, the whole message tree of one (with the session's ratings),
// rename, delete.
import { Hono } from 'hono';
import { deleteConversation, listConversationMessages, listConversationRatings, listConversations, renameConversation } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { ownedConversation } from '../chat/targets.ts';
import { conversationSummary, wireMessage } from '../chat/rest-bodies.ts';
import { sessionAuth } from '../middleware/session-auth.ts';
import type { ConversationDetail } from '../protocol.ts';
import { RenameRequestSchema } from '../protocol.ts';
import { idParam, readJson } from './body.ts';

/**
 * A paging parameter as an integer clamped to [min, max]; unparsable or absent: the default. Lenient
 * (pages are a convenience), but never a fraction or a number beyond what the database's bigint and a
 * JS number hold (`?offset=1e99` once reached SQL).
 */
function queryInt(raw: string | undefined, fallback: number, min: number, max: number): number {
  const n = Math.trunc(Number(raw ?? fallback));
  return Number.isFinite(n) ? Math.min(Math.max(n, min), max) : fallback;
}

export function conversationRoutes(deps: ServerDeps): Hono<AppEnv> {
  const { db } = deps;
  const app = new Hono<AppEnv>();
  app.use(sessionAuth(deps));
  app.get('/', async (c) => {
    const limit = queryInt(c.req.query('limit'), 100, 1, 500);
    const offset = queryInt(c.req.query('offset'), 0, 0, Number.MAX_SAFE_INTEGER);
    const rows = await listConversations(db, c.get('session').id, { limit, offset });
    return c.json({ conversations: rows.map(conversationSummary) });
  });
  app.get('/:id', async (c) => {
    const session = c.get('session');
    const conversation = await ownedConversation(db, session.id, idParam(c));
    const [messages, ratings] = await Promise.all([
      listConversationMessages(db, conversation.id),
      listConversationRatings(db, session.id, conversation.id),
    ]);
    const byMessage = new Map(ratings.map((r) => [r.message_id, r]));
    const body: ConversationDetail = { ...conversationSummary(conversation), messages: messages.map((m) => wireMessage(m, byMessage)) };
    return c.json(body);
  });
  app.patch('/:id', async (c) => {
    const conversation = await ownedConversation(db, c.get('session').id, idParam(c));
    const { title } = await readJson(c, RenameRequestSchema);
    return c.json(conversationSummary((await renameConversation(db, conversation.id, title))!));
  });
  app.delete('/:id', async (c) => {
    const conversation = await ownedConversation(db, c.get('session').id, idParam(c));
    await deleteConversation(db, conversation.id);
    return c.body(null, 204);
  });
  return app;
}
