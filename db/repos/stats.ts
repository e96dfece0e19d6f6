// Feedback counts for the dashboard: ratings by value, pairs by source, and thumbs per model version
// of the rated replies (the thumbs-up rate each policy version earned).
import { sql } from 'kysely';
import { PAIR_SOURCES, type PairSource } from '../schema.ts';
import type { Db } from '../util.ts';

interface FeedbackStats {
  ratings: { total: number; up: number; down: number };
  pairs: { total: number; by_source: Record<string, number> };
  by_version: { model_version: number; up: number; down: number }[];
}

export async function feedbackStats(db: Db): Promise<FeedbackStats> {
  const ratings = await db
    .selectFrom('ratings')
    .select([
      sql<number>`count(*)::int`.as('total'),
      sql<number>`count(*) filter (where value > 0)::int`.as('up'),
      sql<number>`count(*) filter (where value < 0)::int`.as('down'),
    ])
    .executeTakeFirstOrThrow();
  const pairs = await countPairsBySource(db);
  const byVersion = await db
    .selectFrom('ratings as r')
    .innerJoin('messages as m', 'm.id', 'r.message_id')
    .where('m.model_version_id', 'is not', null)
    .select([
      'm.model_version_id as model_version',
      sql<number>`count(*) filter (where r.value > 0)::int`.as('up'),
      sql<number>`count(*) filter (where r.value < 0)::int`.as('down'),
    ])
    .groupBy('m.model_version_id')
    .orderBy('m.model_version_id')
    .execute();
  const bySource = Object.fromEntries(pairs.filter((p) => p.n > 0).map((p) => [p.source, p.n]));
  return {
    ratings,
    pairs: { total: pairs.reduce((a, p) => a + p.n, 0), by_source: bySource },
    by_version: byVersion.map((v) => ({ model_version: v.model_version!, up: v.up, down: v.down })),
  };
}

/** Ratings stored. */
export async function countRatings(db: Db): Promise<number> {
  const row = await db.selectFrom('ratings').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  return row.n;
}

/** Preference pairs stored, for every source (0 where there are none). */
export async function countPairsBySource(db: Db): Promise<{ source: PairSource; n: number }[]> {
  const rows = await db.selectFrom('preference_pairs').select(['source', sql<number>`count(*)::int`.as('n')]).groupBy('source').execute();
  return PAIR_SOURCES.map((source) => ({ source, n: rows.find((r) => r.source === source)?.n ?? 0 }));
}
