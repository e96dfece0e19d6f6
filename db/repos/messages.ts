// The message tree: each message has a parent (the previous turn) in the same conversation;
// regenerating a reply adds a sibling under the same parent.
import { sql } from 'kysely';
import type {
  ChatTurn,
  FinishReason,
  JsonObject,
  Message,
  MessageOrigin,
  MessageRole,
  MessageTimings,
} from '../schema.ts';
import { inTransaction, RepoError, toJson, type Db } from '../util.ts';

interface NewMessageInput {
  conversationId: number;
  /** The previous turn (same conversation); null or omitted for the first message. */
  parentId?: number | null;
  role: MessageRole;
  /** Default `client`; `generated` only for the rows of replies the model writes. */
  origin?: MessageOrigin;
  /** Empty for a reply that is about to be generated (fill it in with updateMessage). */
  content?: string;
  modelVersionId?: number | null;
  decoding?: JsonObject | null;
  finishReason?: FinishReason | null;
  promptTokens?: number | null;
  completionTokens?: number | null;
  timings?: MessageTimings | null;
}

/** What a finished reply fills in: everything of a new message except where it sits in the tree. */
type MessagePatch = Omit<NewMessageInput, 'conversationId' | 'parentId' | 'role' | 'origin'>;

/** The finish reasons of a generation that ran its course or was stopped by the user. */
const GENERATION_ENDS: readonly (FinishReason | null)[] = ['stop', 'length', 'cancelled'];

/**
 * Why a message may not be treated as a reply the model wrote (rated, chosen, paired), or undefined
 * when it may: it must be a generated assistant row that stored its model version and a finish reason
 * from generation (not still running, failed or interrupted).
 */
export function notModelReply(m: Pick<Message, 'id' | 'role' | 'origin' | 'model_version_id' | 'finish_reason'>): string | undefined {
  if (m.role !== 'assistant') return `message ${m.id} is a ${m.role} message, not a reply of the model`;
  if (m.origin !== 'generated') return `message ${m.id} was sent by the client (conversation history), not written by the model`;
  if (m.finish_reason === null) return `message ${m.id} is still being generated`;
  if (m.model_version_id === null || !GENERATION_ENDS.includes(m.finish_reason)) return `message ${m.id} did not finish generating (${m.finish_reason})`;
  return undefined;
}

const jsonOrNull = (value: unknown) => (value == null ? null : toJson(value));

/**
 * Inserts a message and bumps its conversation's `updated_at`. A parent in another conversation is
 * refused by the database (foreign key violation, 23503).
 */
export async function insertMessage(db: Db, m: NewMessageInput): Promise<Message> {
  return inTransaction(db, async (trx) => {
    const message = await trx
      .insertInto('messages')
      .values({
        conversation_id: m.conversationId,
        parent_id: m.parentId ?? null,
        role: m.role,
        origin: m.origin ?? 'client',
        content: m.content ?? '',
        model_version_id: m.modelVersionId ?? null,
        decoding: jsonOrNull(m.decoding),
        finish_reason: m.finishReason ?? null,
        prompt_tokens: m.promptTokens ?? null,
        completion_tokens: m.completionTokens ?? null,
        timings: jsonOrNull(m.timings),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx
      .updateTable('conversations')
      .set({ updated_at: sql`now()` })
      .where('id', '=', m.conversationId)
      .execute();
    return message;
  });
}

export interface NewTurn {
  /** null: a new conversation of `sessionId`, titled `title`. */
  conversationId: number | null;
  sessionId: number;
  title: string;
  /** The message the first new row hangs under (null: a root). */
  parentId: number | null;
  /** Client messages stored in order, each under the previous one (origin `client`). */
  turns: { role: MessageRole; content: string }[];
  /** Empty reply rows (origin `generated`) under the last turn, one per reply about to be generated. */
  replies: { decoding: JsonObject }[];
}

/**
 * Stores a new turn in one statement: the conversation (created, or its `updated_at` bumped), the
 * client messages, and the empty reply rows. One round trip instead of one per row matters because
 * a reply's first token waits for these rows (their ids go out with it), and on embedded PGlite each
 * query is a round trip to the database's thread. One statement is atomic by itself.
 * Throws RepoError not_found when an existing conversation is gone.
 */
export async function insertTurn(db: Db, t: NewTurn): Promise<StoredTurnIds> {
  if (t.replies.length === 0) throw new RepoError('bad_request', 'a turn stores at least one reply row');
  const ctes = [
    t.conversationId === null
      ? sql`conv as (insert into conversations (session_id, title) values (${t.sessionId}, ${t.title}) returning id)`
      : sql`conv as (update conversations set updated_at = now() where id = ${t.conversationId} returning id)`,
  ];
  // Each row's parent: the given one for the first, then the row inserted before it (its CTE joined in).
  let parent = sql`${t.parentId}::bigint`;
  let from = sql`conv`;
  t.turns.forEach((turn, i) => {
    const name = sql.raw(`t${i}`);
    ctes.push(sql`${name} as (insert into messages (conversation_id, parent_id, role, origin, content) select conv.id, ${parent}, ${turn.role}, 'client', ${turn.content} from ${from} returning id)`);
    parent = sql.raw(`t${i}.id`);
    from = sql.raw(`conv, t${i}`);
  });
  const replies = t.replies.map((_, j) => sql.raw(`r${j}`));
  t.replies.forEach((r, j) => {
    ctes.push(sql`${replies[j]} as (insert into messages (conversation_id, parent_id, role, origin, decoding) select conv.id, ${parent}, 'assistant', 'generated', ${toJson(r.decoding)}::jsonb from ${from} returning id)`);
  });
  const ids = sql.join(replies.map((r, j) => sql`${r}.id as ${sql.raw(`r${j}`)}`));
  const { rows } = await sql<Record<string, number | null>>`with ${sql.join(ctes)} select conv.id as conversation_id, ${parent} as parent_id, ${ids} from ${from}, ${sql.join(replies)}`.execute(db);
  const row = rows[0];
  if (!row) throw new RepoError('not_found', `conversation ${t.conversationId} does not exist`);
  return { conversationId: row.conversation_id!, parentId: row.parent_id, replyIds: replies.map((_, j) => row[`r${j}`]!) };
}

export interface StoredTurnIds {
  conversationId: number;
  /** The message the replies answer (null: they are roots). */
  parentId: number | null;
  /** One per reply, in order. */
  replyIds: number[];
}

/**
 * Stores several new turns in one statement, with the same rows insertTurn would write for each. The
 * statement's text does not depend on the turns (they travel as two JSON parameters), and its rows
 * are set-based: on embedded PGlite eight turns took 3-8 ms this way against 11-24 ms as eight
 * insertTurn calls. Ids are drawn from the tables' own identity sequences first, so that each row's
 * parent (the turn before it, or the given parent) is known before anything is inserted; foreign
 * keys are checked at the end of the statement, so a row may point at one inserted beside it.
 * Any bad turn (an existing conversation that is gone, a parent of another conversation) fails the
 * whole statement: callers that need the others stored write the turns one by one after that.
 */
export async function insertTurns(db: Db, turns: NewTurn[]): Promise<StoredTurnIds[]> {
  if (turns.length === 0) return [];
  if (turns.some((t) => t.replies.length === 0)) throw new RepoError('bad_request', 'a turn stores at least one reply row');
  const requests = turns.map((t, k) => ({ k, conversation_id: t.conversationId, session_id: t.sessionId, title: t.title, parent_id: t.parentId }));
  // i: position in the request's chain (replies all sit at turns.length); j: the reply's index, null for a client turn.
  const messages = turns.flatMap((t, k) => [
    ...t.turns.map((turn, i) => ({ k, i, j: null, role: turn.role, origin: 'client', content: turn.content, decoding: null })),
    ...t.replies.map((r, j) => ({ k, i: t.turns.length, j, role: 'assistant', origin: 'generated', content: '', decoding: r.decoding })),
  ]);
  const { rows } = await sql<{ k: number; conversation_id: number | string; parent_id: number | string | null; reply_ids: (number | string)[] }>`
    with req as (
      select * from jsonb_to_recordset(${toJson(requests)}::jsonb)
        as r(k int, conversation_id bigint, session_id bigint, title text, parent_id bigint)
    ),
    conv as materialized (
      select k, conversation_id as existing, coalesce(conversation_id, nextval(pg_get_serial_sequence('conversations', 'id'))) as id, session_id, title, parent_id
      from req
    ),
    conv_new as (
      insert into conversations (id, session_id, title) overriding system value
      select id, session_id, title from conv where existing is null
    ),
    conv_bumped as (
      update conversations set updated_at = now() where id in (select existing from conv where existing is not null)
    ),
    msg as materialized (
      select m.*, nextval(pg_get_serial_sequence('messages', 'id')) as id
      from jsonb_to_recordset(${toJson(messages)}::jsonb)
        as m(k int, i int, j int, role text, origin text, content text, decoding jsonb)
    ),
    placed as materialized (
      select m.id, c.id as conversation_id, case when m.i = 0 then c.parent_id else p.id end as parent_id,
        m.k, m.j, m.role, m.origin, m.content, m.decoding
      from msg m
      join conv c on c.k = m.k
      left join msg p on p.k = m.k and p.i = m.i - 1 and p.j is null
    ),
    inserted as (
      insert into messages (id, conversation_id, parent_id, role, origin, content, decoding) overriding system value
      select id, conversation_id, parent_id, role, origin, content, decoding from placed
    )
    select k, conversation_id, min(parent_id) as parent_id, array_agg(id order by j) as reply_ids
    from placed where j is not null
    group by k, conversation_id`.execute(db);
  const byRequest = new Map(rows.map((r) => [Number(r.k), r]));
  return turns.map((_, k) => {
    const row = byRequest.get(k);
    if (!row) throw new Error(`the turn statement returned no row for turn ${k}`);
    return { conversationId: Number(row.conversation_id), parentId: row.parent_id === null ? null : Number(row.parent_id), replyIds: row.reply_ids.map(Number) };
  });
}

/** A reply's end: what the generation produced, how it ended, and what wrote it. */
export interface MessageEnd {
  id: number;
  content: string;
  finishReason: FinishReason;
  timings: MessageTimings;
  /** Left as stored when omitted. */
  modelVersionId?: number;
  promptTokens?: number;
  completionTokens?: number;
  decoding?: JsonObject;
}

/**
 * Stores the ends of several replies in one statement (an UPDATE joined to a VALUES list): on
 * embedded PGlite eight single updates took 8.6 ms and one eight-row update 1.9 ms. Omitted fields
 * keep their stored value. Returns the ids that exist (a missing id is skipped, as updateMessage
 * returns undefined for it).
 */
export async function finishMessages(db: Db, ends: MessageEnd[]): Promise<number[]> {
  if (ends.length === 0) return [];
  const rows = ends.map(
    (e) =>
      sql`(${e.id}::bigint, ${e.content}::text, ${e.finishReason}::text, ${toJson(e.timings)}::jsonb, ${e.modelVersionId ?? null}::bigint, ${e.promptTokens ?? null}::int, ${e.completionTokens ?? null}::int, ${jsonOrNull(e.decoding)}::jsonb)`,
  );
  const { rows: updated } = await sql<{ id: number }>`
    update messages as m set
      content = v.content,
      finish_reason = v.finish_reason,
      timings = v.timings,
      model_version_id = coalesce(v.model_version_id, m.model_version_id),
      prompt_tokens = coalesce(v.prompt_tokens, m.prompt_tokens),
      completion_tokens = coalesce(v.completion_tokens, m.completion_tokens),
      decoding = coalesce(v.decoding, m.decoding)
    from (values ${sql.join(rows)}) as v(id, content, finish_reason, timings, model_version_id, prompt_tokens, completion_tokens, decoding)
    where m.id = v.id
    returning m.id`.execute(db);
  return updated.map((r) => Number(r.id));
}

/** Updates a message (typically a reply when its generation ends); undefined when it does not exist. */
export async function updateMessage(db: Db, id: number, patch: MessagePatch): Promise<Message | undefined> {
  const set = {
    ...(patch.content !== undefined && { content: patch.content }),
    ...(patch.modelVersionId !== undefined && { model_version_id: patch.modelVersionId }),
    ...(patch.decoding !== undefined && { decoding: jsonOrNull(patch.decoding) }),
    ...(patch.finishReason !== undefined && { finish_reason: patch.finishReason }),
    ...(patch.promptTokens !== undefined && { prompt_tokens: patch.promptTokens }),
    ...(patch.completionTokens !== undefined && { completion_tokens: patch.completionTokens }),
    ...(patch.timings !== undefined && { timings: jsonOrNull(patch.timings) }),
  };
  if (Object.keys(set).length === 0) return getMessage(db, id);
  return db.updateTable('messages').set(set).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function getMessage(db: Db, id: number): Promise<Message | undefined> {
  return db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
}

/** A message with the session that owns its conversation, for authorization checks. */
export async function getMessageOwner(
  db: Db,
  id: number,
): Promise<{ message: Message; sessionId: number } | undefined> {
  const row = await db
    .selectFrom('messages')
    .innerJoin('conversations', 'conversations.id', 'messages.conversation_id')
    .selectAll('messages')
    .select('conversations.session_id as owner_session_id')
    .where('messages.id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  const { owner_session_id, ...message } = row;
  return { message, sessionId: owner_session_id };
}

/** The path from the root of the tree down to `id` (inclusive), in conversation order; [] if unknown. */
export async function findThread(db: Db, id: number): Promise<Message[]> {
  return db
    .withRecursive('path(id, parent_id, depth)', (qb) =>
      qb
        .selectFrom('messages')
        .select(['id', 'parent_id', sql<number>`0`.as('depth')])
        .where('id', '=', id)
        .unionAll((qb) =>
          qb
            .selectFrom('messages as m')
            .innerJoin('path', 'path.parent_id', 'm.id')
            .select(['m.id', 'm.parent_id', sql<number>`path.depth + 1`.as('depth')]),
        ),
    )
    .selectFrom('path')
    .innerJoin('messages', 'messages.id', 'path.id')
    .selectAll('messages')
    .orderBy('path.depth', 'desc')
    .execute();
}

/**
 * A conversation's owner and the thread from its root down to its newest message, in one statement
 * (where a chat without parent_id continues: the ownership check, the newest message and its thread
 * would otherwise be three round trips). undefined when the conversation does not exist; an empty
 * thread when it has no messages.
 */
export async function conversationThread(db: Db, conversationId: number): Promise<{ sessionId: number; thread: Message[] } | undefined> {
  const { rows } = await sql<Message & { owner_session_id: number; path_depth: number | null }>`
    with recursive
      newest as (select id from messages where conversation_id = ${conversationId} order by id desc limit 1),
      path(id, parent_id, depth) as (
        select m.id, m.parent_id, 0 from messages m join newest on m.id = newest.id
        union all
        select m.id, m.parent_id, path.depth + 1 from messages m join path on m.id = path.parent_id
      )
    select c.session_id as owner_session_id, path.depth as path_depth, m.*
    from conversations c
    left join path on true
    left join messages m on m.id = path.id
    where c.id = ${conversationId}
    order by path.depth desc`.execute(db);
  if (rows.length === 0) return undefined;
  const thread = rows.filter((r) => r.path_depth !== null).map(({ owner_session_id: _o, path_depth: _d, ...m }) => m as Message);
  return { sessionId: rows[0].owner_session_id, thread };
}

/**
 * The chat transcripts ending at each of `ids` (root first), as role/content turns, for training
 * exports. Unknown ids are absent from the map.
 */
export async function findTranscripts(db: Db, ids: readonly number[]): Promise<Map<number, ChatTurn[]>> {
  const transcripts = new Map<number, ChatTurn[]>();
  if (ids.length === 0) return transcripts;
  const rows = await db
    .withRecursive('path(start_id, id, parent_id, depth)', (qb) =>
      qb
        .selectFrom('messages')
        .select(['id as start_id', 'id', 'parent_id', sql<number>`0`.as('depth')])
        .where('id', 'in', [...new Set(ids)])
        .unionAll((qb) =>
          qb
            .selectFrom('messages as m')
            .innerJoin('path', 'path.parent_id', 'm.id')
            .select(['path.start_id', 'm.id', 'm.parent_id', sql<number>`path.depth + 1`.as('depth')]),
        ),
    )
    .selectFrom('path')
    .innerJoin('messages', 'messages.id', 'path.id')
    .select(['path.start_id', 'messages.role', 'messages.content'])
    .orderBy('path.start_id')
    .orderBy('path.depth', 'desc')
    .execute();
  for (const { start_id, role, content } of rows) {
    let turns = transcripts.get(start_id);
    if (!turns) transcripts.set(start_id, (turns = []));
    turns.push({ role, content });
  }
  return transcripts;
}

/**
 * All replies to the same parent as `id`, itself included, oldest first (for a root message: the
 * conversation's roots). [] if the message does not exist.
 */
export async function listSiblings(db: Db, id: number): Promise<Message[]> {
  const self = await getMessage(db, id);
  if (!self) return [];
  let query = db.selectFrom('messages').selectAll().where('conversation_id', '=', self.conversation_id);
  query =
    self.parent_id === null ? query.where('parent_id', 'is', null) : query.where('parent_id', '=', self.parent_id);
  return query.orderBy('id').execute();
}

/** The direct replies to a message, oldest first. */
export async function listChildren(db: Db, parentId: number): Promise<Message[]> {
  return db.selectFrom('messages').selectAll().where('parent_id', '=', parentId).orderBy('id').execute();
}

/** Every message of a conversation (the whole tree), oldest first; parents precede children. */
export async function listConversationMessages(db: Db, conversationId: number): Promise<Message[]> {
  return db
    .selectFrom('messages')
    .selectAll()
    .where('conversation_id', '=', conversationId)
    .orderBy('id')
    .execute();
}

/** The most recent user messages (newest first) with their transcripts up to them, as prompts for training. */
export async function listRecentUserPrompts(db: Db, limit: number): Promise<ChatTurn[][]> {
  const rows = await db.selectFrom('messages').select('id').where('role', '=', 'user').orderBy('id', 'desc').limit(limit).execute();
  const transcripts = await findTranscripts(db, rows.map((r) => r.id));
  return rows.flatMap((r) => {
    const t = transcripts.get(r.id);
    return t ? [t] : [];
  });
}

/**
 * Marks replies that never stored their end (null finish_reason) as `interrupted`, optionally only
 * those created more than `olderThanMs` ago by the database's clock (not this process's, which may
 * differ from the database host's); returns their ids. For a start-up sweep: the process that was
 * generating them is gone. Their text is left as stored (a reply's text is written at its end).
 */
export async function markInterruptedReplies(db: Db, { olderThanMs }: { olderThanMs?: number } = {}): Promise<number[]> {
  let query = db
    .updateTable('messages')
    .set({ finish_reason: 'interrupted' })
    .where('role', '=', 'assistant')
    // Client history turns have no end to store: they are context, never "unfinished".
    .where('origin', '=', 'generated')
    .where('finish_reason', 'is', null);
  if (olderThanMs !== undefined) query = query.where('created_at', '<', sql<Date>`now() - ${olderThanMs} * interval '1 millisecond'`);
  const rows = await query.returning('id').execute();
  return rows.map((r) => r.id).sort((a, b) => a - b);
}
