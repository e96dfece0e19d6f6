/**
 * The policy this server serves, kept in line with the database's active version. Loading goes
 * through the engine (sha256, shapes, tokenizer, warm-up forward) before a version becomes active, so
 * a bad checkpoint is marked rejected and the old model keeps serving; running streams finish on the
 * weights they started with. One operation at a time. Listeners hear each change (the WebSocket
 * pushes `{"type":"model"}`).
 */
import type { Logger } from 'pino';
import { activateModelVersion, getActiveModelVersion, getModelVersion, listModelVersions, rejectModelVersion, type Db, type ModelVersion } from '../db/index.ts';
import { ensureActivePolicy } from './initial-policy.ts';
import type { EngineHost } from './engine/engine-host.ts';
import { ApiError } from './errors.ts';

interface ServingVersion {
  id: number;
  sha256: string;
  checkpointPath: string;
}

export class ModelManager {
  private serving: ServingVersion | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(v: ServingVersion) => void>();

  constructor(
    private readonly db: Db,
    private readonly engine: EngineHost,
    private readonly log: Logger,
  ) {}

  /** The version serving new requests (null before start()). */
  get current(): ServingVersion | null {
    return this.serving;
  }

  onChange(listener: (v: ServingVersion) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Start-up: makes sure a policy is active, then loads it; a version that fails to load is rejected and the previous one tried. */
  start(opts: { checkpoint?: string; stateDir: string }): Promise<ServingVersion> {
    return this.serialize(async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const version = await ensureActivePolicy(this.db, opts, this.log);
        if (version.metrics.source === 'init') {
          this.log.warn({ version: version.id, checkpoint: version.checkpoint_path }, 'serving a randomly initialised model: replies are noise until a trained model is present (models/default/policy or CHECKPOINT)');
        }
        try {
          return await this.load(version);
        } catch (err) {
          const reason = `failed to load at start-up: ${(err as Error).message}`;
          this.log.error({ version: version.id, checkpoint: version.checkpoint_path, err }, 'active model version does not load; rejecting it');
          await rejectModelVersion(this.db, version.id, [reason]);
        }
      }
      throw new Error('no policy version could be loaded (see the errors above)');
    });
  }

  /** Loads version `id` and makes it the active one (rollback or roll forward). */
  activate(id: number): Promise<ModelVersion> {
    return this.serialize(async () => {
      const version = await getModelVersion(this.db, id);
      if (!version) throw new ApiError('not_found', `model version ${id} does not exist`);
      if (version.kind !== 'policy') throw new ApiError('bad_request', `model version ${id} is a ${version.kind} model; only policies are served`);
      if (version.status === 'rejected') throw new ApiError('conflict', `model version ${id} was rejected and cannot be activated`);
      if (this.serving?.id !== id) {
        try {
          await this.load(version);
        } catch (err) {
          await rejectModelVersion(this.db, id, [`failed to load: ${(err as Error).message}`]);
          throw new ApiError('conflict', `model version ${id} failed to load and was marked rejected: ${(err as Error).message}`);
        }
      }
      return (await activateModelVersion(this.db, id)).version;
    });
  }

  /** Activates the policy that was active before the current one. */
  async rollback(): Promise<ModelVersion> {
    const previous = (await listModelVersions(this.db, { kind: 'policy', limit: 1000 }))
      .filter((v) => v.status === 'retired' && v.activated_at !== null)
      .sort((a, b) => b.activated_at!.getTime() - a.activated_at!.getTime() || b.id - a.id)[0];
    if (!previous) throw new ApiError('conflict', 'there is no previously active policy version to roll back to');
    return this.activate(previous.id);
  }

  /** Serves the database's active version if it is not the one loaded (another process activated it). */
  syncWithDatabase(): Promise<ServingVersion | null> {
    return this.serialize(async () => {
      const active = await getActiveModelVersion(this.db, 'policy');
      if (!active || active.id === this.serving?.id) return this.serving;
      try {
        return await this.load(active);
      } catch (err) {
        // A published checkpoint that does not load (corrupt, wrong shapes) is marked bad and the
        // version still being served becomes the active one again, so every replica agrees.
        const reason = `failed to load: ${(err as Error).message}`;
        this.log.error({ version: active.id, checkpoint: active.checkpoint_path, err }, 'the newly active version does not load; rejecting it and keeping the current one');
        const { reactivated } = await rejectModelVersion(this.db, active.id, [reason]);
        if (this.serving && reactivated?.id !== this.serving.id) await activateModelVersion(this.db, this.serving.id);
        return this.serving;
      }
    });
  }

  private async load(version: ModelVersion): Promise<ServingVersion> {
    const t0 = performance.now();
    await this.engine.load(version.checkpoint_path, String(version.id));
    const serving = { id: version.id, sha256: version.sha256, checkpointPath: version.checkpoint_path };
    const changed = this.serving?.id !== serving.id;
    this.serving = serving;
    this.log.info({ version: version.id, checkpoint: version.checkpoint_path, ms: Math.round(performance.now() - t0) }, 'model version loaded');
    if (changed) for (const listener of this.listeners) listener(serving);
    return serving;
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }
}
