// Model versions (policy and reward checkpoints) and their life cycle:
// candidate → active → retired (and back to active on rollback), or candidate → rejected.
// The database allows at most one active version per kind.
import { sql } from 'kysely';
import type { JsonObject, ModelKind, ModelStatus, ModelVersion } from '../schema.ts';
import { inTransaction, RepoError, toJson, type Db } from '../util.ts';

interface NewModelVersionInput {
  kind: ModelKind;
  /** The version it was trained from. */
  parentId?: number | null;
  checkpointPath: string;
  /** Hex sha256 of the checkpoint's weights. */
  sha256: string;
  metrics?: JsonObject;
  /** Default 'candidate'; use activateModelVersion to make one active. */
  status?: Exclude<ModelStatus, 'active'>;
  reasons?: string[];
}

export async function insertModelVersion(db: Db, v: NewModelVersionInput): Promise<ModelVersion> {
  return db
    .insertInto('model_versions')
    .values({
      kind: v.kind,
      parent_id: v.parentId ?? null,
      checkpoint_path: v.checkpointPath,
      sha256: v.sha256,
      metrics: toJson(v.metrics ?? {}),
      status: v.status ?? 'candidate',
      reasons: toJson(v.reasons ?? []),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getModelVersion(db: Db, id: number): Promise<ModelVersion | undefined> {
  return db.selectFrom('model_versions').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function getActiveModelVersion(db: Db, kind: ModelKind): Promise<ModelVersion | undefined> {
  return db
    .selectFrom('model_versions')
    .selectAll()
    .where('kind', '=', kind)
    .where('status', '=', 'active')
    .executeTakeFirst();
}

/** Versions, newest first, optionally of one kind. */
export async function listModelVersions(
  db: Db,
  { kind, limit = 100 }: { kind?: ModelKind; limit?: number } = {},
): Promise<ModelVersion[]> {
  let query = db.selectFrom('model_versions').selectAll().orderBy('id', 'desc').limit(limit);
  if (kind) query = query.where('kind', '=', kind);
  return query.execute();
}

/**
 * Makes a version the active one of its kind and retires the previous active one, in one transaction
 * (for publish: insert and activate inside one `db.transaction()`; for rollback: activate an older
 * version). Activating the active version changes nothing. A rejected version cannot be activated.
 */
export async function activateModelVersion(
  db: Db,
  id: number,
): Promise<{ version: ModelVersion; previous: ModelVersion | undefined }> {
  return inTransaction(db, async (trx) => {
    const target = await getModelVersion(trx, id);
    if (!target) throw new RepoError('not_found', `model version ${id} does not exist`);
    if (target.status === 'rejected') {
      throw new RepoError('conflict', `model version ${id} was rejected and cannot be activated`);
    }
    if (target.status === 'active') return { version: target, previous: undefined };
    // Serialize activations of this kind: a concurrent one would otherwise find no active version to
    // retire in its snapshot and then collide on the one-active index.
    await trx
      .selectFrom('model_versions')
      .select('id')
      .where('kind', '=', target.kind)
      .orderBy('id')
      .forUpdate()
      .execute();
    const previous = await trx
      .updateTable('model_versions')
      .set({ status: 'retired' })
      .where('kind', '=', target.kind)
      .where('status', '=', 'active')
      .returningAll()
      .executeTakeFirst();
    const version = await trx
      .updateTable('model_versions')
      .set({ status: 'active', activated_at: sql`clock_timestamp()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { version, previous };
  });
}

/**
 * Marks a version rejected, with the reasons (failed gate, checkpoint that does not load). If it was
 * the active version, the most recently active retired version of its kind becomes active again and
 * is returned as `reactivated` (undefined when there is none: then no version of that kind is active).
 */
export async function rejectModelVersion(
  db: Db,
  id: number,
  reasons: string[],
): Promise<{ version: ModelVersion; reactivated: ModelVersion | undefined }> {
  return inTransaction(db, async (trx) => {
    const target = await getModelVersion(trx, id);
    if (!target) throw new RepoError('not_found', `model version ${id} does not exist`);
    const version = await trx
      .updateTable('model_versions')
      .set({ status: 'rejected', reasons: sql`reasons || ${toJson(reasons)}::jsonb` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (target.status !== 'active') return { version, reactivated: undefined };
    const fallback = await trx
      .selectFrom('model_versions')
      .select('id')
      .where('kind', '=', target.kind)
      .where('status', '=', 'retired')
      .where('activated_at', 'is not', null)
      .orderBy('activated_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    const reactivated = fallback ? (await activateModelVersion(trx, fallback.id)).version : undefined;
    return { version, reactivated };
  });
}
