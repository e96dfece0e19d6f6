// Preference pairs: derived from ratings of sibling replies, recorded by A/B comparisons, or imported
// as text. The rules that create them from user actions live in feedback.ts.
import { sql } from 'kysely';
import type { ChatTurn, PairSource, PreferencePair } from '../schema.ts';
import { RepoError, toJson, type Db } from '../util.ts';
import { findTranscripts } from './messages.ts';

/**
 * Brings the `siblings` pairs involving `messageId` in line with the ratings: a reply rated +1 and a
 * sibling (same parent) rated −1 by the same session imply the pair (chosen = +1, rejected = −1).
 * Missing pairs are inserted, pairs no longer implied are deleted (a flipped preference is a new pair:
 * it has not been trained on). Pairs recorded by a comparison are left alone.
 *
 * Returns the ids of the pairs now implied by the ratings of `messageId` (whatever their source),
 * ascending. Call it inside the transaction that changed the ratings, after locking the sibling group
 * (see feedback.ts).
 */
export async function syncSiblingPairs(trx: Db, messageId: number): Promise<number[]> {
  // Two index-driven branches, the message as the chosen side and as the rejected one: from its own
  // rating to the same session's ratings of its siblings (same parent). One query with an OR across
  // both ratings led the planner (the embedded database has no statistics) to join every rating with
  // every other one.
  const side = (own: 1 | -1) => {
    const other = own === 1 ? -1 : 1;
    const [chosen, rejected] = own === 1 ? (['o', 's'] as const) : (['s', 'o'] as const);
    return trx
      .selectFrom('messages as x')
      .innerJoin('ratings as o', 'o.message_id', 'x.id')
      .innerJoin('messages as m', 'm.parent_id', 'x.parent_id')
      .innerJoin('ratings as s', (join) => join.onRef('s.message_id', '=', 'm.id').onRef('s.session_id', '=', 'o.session_id'))
      .select(['x.parent_id as prompt_id', `${chosen}.message_id as chosen_id`, `${rejected}.message_id as rejected_id`])
      .where('x.id', '=', messageId)
      .where('o.value', '=', own)
      .where('s.value', '=', other)
      // Client-sent history turns are context, never a side of a pair.
      .where('x.role', '=', 'assistant')
      .where('x.origin', '=', 'generated')
      .where('m.role', '=', 'assistant')
      .where('m.origin', '=', 'generated');
  };
  const implied = await side(1).union(side(-1)).execute();
  const key = (chosen: number | null, rejected: number | null) => `${chosen}>${rejected}`;
  const wanted = new Set(implied.map((p) => key(p.chosen_id, p.rejected_id)));

  const existing = await trx
    .selectFrom('preference_pairs')
    .select(['id', 'chosen_message_id', 'rejected_message_id'])
    .where('source', '=', 'siblings')
    .where((eb) => eb.or([eb('chosen_message_id', '=', messageId), eb('rejected_message_id', '=', messageId)]))
    .execute();
  const stale = existing.filter((p) => !wanted.has(key(p.chosen_message_id, p.rejected_message_id)));
  if (stale.length > 0) {
    await trx
      .deleteFrom('preference_pairs')
      .where('id', 'in', stale.map((p) => p.id))
      .execute();
  }
  if (implied.length === 0) return [];

  await trx
    .insertInto('preference_pairs')
    .values(
      implied.map((p) => ({
        source: 'siblings' as const,
        prompt_message_id: p.prompt_id,
        chosen_message_id: p.chosen_id,
        rejected_message_id: p.rejected_id,
      })),
    )
    .onConflict((oc) => oc.columns(['chosen_message_id', 'rejected_message_id']).doNothing())
    .execute();
  const rows = await trx
    .selectFrom('preference_pairs')
    .select('id')
    .where((eb) =>
      eb.or(
        implied.map((p) =>
          eb.and([eb('chosen_message_id', '=', p.chosen_id), eb('rejected_message_id', '=', p.rejected_id)]),
        ),
      ),
    )
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function getPair(db: Db, id: number): Promise<PreferencePair | undefined> {
  return db.selectFrom('preference_pairs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The pairs in which a message is the chosen or the rejected reply, oldest first. */
export async function listPairsForMessage(db: Db, messageId: number): Promise<PreferencePair[]> {
  return db
    .selectFrom('preference_pairs')
    .selectAll()
    .where((eb) => eb.or([eb('chosen_message_id', '=', messageId), eb('rejected_message_id', '=', messageId)]))
    .orderBy('id')
    .execute();
}

interface ImportedPair {
  source: Extract<PairSource, 'import' | 'bootstrap'>;
  /** The conversation up to and including the prompt (at least one turn). */
  prompt: ChatTurn[];
  chosen: string;
  rejected: string;
}

/** Stores text pairs; pairs already present (same prompt and texts) are skipped. Returns the new ids. */
export async function importPairs(db: Db, pairs: readonly ImportedPair[]): Promise<number[]> {
  if (pairs.length === 0) return [];
  pairs.forEach(checkImportedPair);
  const rows = await db
    .insertInto('preference_pairs')
    .values(
      pairs.map((p) => ({
        source: p.source,
        prompt_context: toJson(p.prompt),
        chosen_text: p.chosen,
        rejected_text: p.rejected,
      })),
    )
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

const ROLES = new Set(['system', 'user', 'assistant']);

function checkImportedPair(p: ImportedPair, index: number): void {
  const problem =
    p.source !== 'import' && p.source !== 'bootstrap'
      ? `source must be 'import' or 'bootstrap', got ${JSON.stringify(p.source)}`
      : !Array.isArray(p.prompt) || p.prompt.length === 0
        ? 'prompt must be a non-empty array of turns'
        : p.prompt.some((t) => !ROLES.has(t?.role) || typeof t.content !== 'string')
          ? 'each prompt turn needs a role (system, user, assistant) and a string content'
          : typeof p.chosen !== 'string' || typeof p.rejected !== 'string'
            ? 'chosen and rejected must be strings'
            : p.chosen === p.rejected
              ? 'chosen and rejected are the same text'
              : undefined;
  if (problem) throw new RepoError('bad_request', `imported pair ${index}: ${problem}`);
}

/** Records that `modelVersionId` was trained on the given pairs (idempotent). */
export async function markPairsUsed(db: Db, modelVersionId: number, pairIds: readonly number[]): Promise<void> {
  if (pairIds.length === 0) return;
  await db
    .insertInto('preference_pair_uses')
    .values(pairIds.map((pairId) => ({ pair_id: pairId, model_version_id: modelVersionId })))
    .onConflict((oc) => oc.doNothing())
    .execute();
}

/** One pair ready for training (TRL's `prompt` / `chosen` / `rejected`, plus ids). */
interface ExportedPair {
  id: number;
  source: PairSource;
  /** The conversation from its root up to and including the prompt message. */
  prompt: ChatTurn[];
  chosen: string;
  rejected: string;
  prompt_message_id: number | null;
  chosen_message_id: number | null;
  rejected_message_id: number | null;
  created_at: Date;
  /** Model versions already trained on this pair, ascending. */
  trained_by: number[];
}

export interface PageOptions {
  /** Only rows with a larger id (for paging, or "new since"). */
  afterId?: number;
  /** Default 1000. */
  limit?: number;
}

/** Pairs in id order, with their prompt context and reply texts; page with `afterId`. Pairs with a client-sent side are left out. */
export async function exportPairs(
  db: Db,
  { afterId = 0, limit = 1000, sources }: PageOptions & { sources?: readonly PairSource[] } = {},
): Promise<ExportedPair[]> {
  let query = db
    .selectFrom('preference_pairs as p')
    .leftJoin('messages as c', 'c.id', 'p.chosen_message_id')
    .leftJoin('messages as r', 'r.id', 'p.rejected_message_id')
    .select([
      'p.id',
      'p.source',
      'p.prompt_message_id',
      'p.chosen_message_id',
      'p.rejected_message_id',
      'p.prompt_context',
      'p.created_at',
      sql<string>`coalesce(p.chosen_text, c.content)`.as('chosen'),
      sql<string>`coalesce(p.rejected_text, r.content)`.as('rejected'),
      sql<number[]>`coalesce((
        select jsonb_agg(u.model_version_id order by u.model_version_id)
        from preference_pair_uses u where u.pair_id = p.id), '[]'::jsonb)`.as('trained_by'),
    ])
    .where('p.id', '>', afterId)
    // A pair over messages counts only when both sides are replies the model wrote (rows written
    // before message origins existed could pair client-sent text).
    .where((eb) => eb.or([eb('p.chosen_message_id', 'is', null), eb.and([eb('c.origin', '=', 'generated'), eb('r.origin', '=', 'generated')])]))
    .orderBy('p.id')
    .limit(limit);
  // An empty list selects nothing (and `in ()` is not SQL).
  if (sources?.length === 0) return [];
  if (sources) query = query.where('p.source', 'in', [...sources]);
  const rows = await query.execute();
  const transcripts = await findTranscripts(
    db,
    rows.flatMap((r) => (r.prompt_message_id === null ? [] : [r.prompt_message_id])),
  );
  return rows.map(({ prompt_context, ...row }) => ({
    ...row,
    prompt: prompt_context ?? transcripts.get(row.prompt_message_id!) ?? [],
  }));
}
