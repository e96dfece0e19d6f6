// Training runs: queued → running → succeeded | failed | cancelled. The database allows one running
// run at a time across every process sharing it; a trainer takes the next queued run with
// claimNextTrainingRun (FOR UPDATE SKIP LOCKED).
import { sql } from 'kysely';
import type { JsonObject, TrainingRun } from '../schema.ts';
import { SqlState, sqlState, toJson, type Db } from '../util.ts';

/** Queues a run with its resolved config. */
export async function createTrainingRun(db: Db, { config = {} }: { config?: JsonObject } = {}): Promise<TrainingRun> {
  return db
    .insertInto('training_runs')
    .values({ config: toJson(config) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Queues a run unless one is already queued or running (the scheduler's way in: two trainers or two
 * ticks seeing the same new feedback queue it once). Returns undefined when one was pending.
 */
export async function queueTrainingRunIfIdle(db: Db, { config = {} }: { config?: JsonObject } = {}): Promise<TrainingRun | undefined> {
  const { rows } = await sql<TrainingRun>`
    insert into training_runs (config)
    select ${toJson(config)}::jsonb
    where not exists (select 1 from training_runs where status in ('queued', 'running'))
    returning *`.execute(db);
  return rows[0];
}

/** Merges keys into a run's recorded config (the trainer adds the settings it resolved). */
export async function mergeTrainingRunConfig(db: Db, id: number, config: JsonObject): Promise<void> {
  await db
    .updateTable('training_runs')
    .set({ config: sql`config || ${toJson(config)}::jsonb` })
    .where('id', '=', id)
    .execute();
}

export async function getTrainingRun(db: Db, id: number): Promise<TrainingRun | undefined> {
  return db.selectFrom('training_runs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Runs, newest first. */
export async function listTrainingRuns(db: Db, { limit = 50 }: { limit?: number } = {}): Promise<TrainingRun[]> {
  return db.selectFrom('training_runs').selectAll().orderBy('id', 'desc').limit(limit).execute();
}

/** The latest run that is not queued (running or finished), for scheduling. */
export async function getLatestStartedTrainingRun(db: Db): Promise<TrainingRun | undefined> {
  return db
    .selectFrom('training_runs')
    .selectAll()
    .where('started_at', 'is not', null)
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .executeTakeFirst();
}

/**
 * Takes the oldest queued run and marks it running, unless a run is already running anywhere; returns
 * undefined when there is nothing to take. Call it outside a transaction: losing a race with another
 * trainer surfaces as a unique violation, which is turned into undefined.
 */
export async function claimNextTrainingRun(db: Db): Promise<TrainingRun | undefined> {
  try {
    return await db
      .updateTable('training_runs')
      .set({ status: 'running', started_at: sql`now()` })
      .where('id', '=', (eb) =>
        eb
          .selectFrom('training_runs')
          .select('id')
          .where('status', '=', 'queued')
          .orderBy('id')
          .limit(1)
          .forUpdate()
          .skipLocked(),
      )
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('training_runs as other').select('other.id').where('other.status', '=', 'running'))),
      )
      .returningAll()
      .executeTakeFirst();
  } catch (error) {
    if (sqlState(error) === SqlState.uniqueViolation) return undefined;
    throw error;
  }
}

/** Merges per-phase metrics into a run's metrics (top-level keys). */
export async function updateTrainingRunMetrics(db: Db, id: number, metrics: JsonObject): Promise<void> {
  await db
    .updateTable('training_runs')
    .set({ metrics: sql`metrics || ${toJson(metrics)}::jsonb` })
    .where('id', '=', id)
    .execute();
}

interface FinishTrainingRunInput {
  status: 'succeeded' | 'failed' | 'cancelled';
  error?: string | null;
  /** Merged into the run's metrics. */
  metrics?: JsonObject;
  policyVersionId?: number | null;
  rewardVersionId?: number | null;
}

/** Ends a queued or running run; undefined when the run does not exist or has already ended. */
export async function finishTrainingRun(
  db: Db,
  id: number,
  { status, error = null, metrics = {}, policyVersionId, rewardVersionId }: FinishTrainingRunInput,
): Promise<TrainingRun | undefined> {
  return db
    .updateTable('training_runs')
    .set({
      status,
      error,
      finished_at: sql`now()`,
      metrics: sql`metrics || ${toJson(metrics)}::jsonb`,
      ...(policyVersionId !== undefined && { policy_version_id: policyVersionId }),
      ...(rewardVersionId !== undefined && { reward_version_id: rewardVersionId }),
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .returningAll()
    .executeTakeFirst();
}

/**
 * Marks every running run failed with `error` (a trainer starting after a crash: the run it was doing
 * will never finish). Returns the ids.
 */
export async function failInterruptedTrainingRuns(db: Db, error: string): Promise<number[]> {
  const rows = await db
    .updateTable('training_runs')
    .set({ status: 'failed', error, finished_at: sql`now()` })
    .where('status', '=', 'running')
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}
