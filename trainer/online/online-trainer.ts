/**
 * The background trainer: every `pollMs` it queues a run when enough new feedback has arrived (at
 * most every `intervalSec`), takes the next queued run (also those queued by POST /api/admin/train),
 * prepares its inputs from the database, trains in a child process, publishes the result in one
 * transaction and tells the servers (an in-process callback, and NOTIFY for other processes).
 *
 * One run at a time across every process sharing the database: on PostgreSQL the trainer first takes
 * a session advisory lock (a second trainer waits as a standby), and the claim itself is exclusive
 * (FOR UPDATE SKIP LOCKED + a unique index on the running status). Holding the lock means no other
 * trainer is alive, so runs still marked running were left by a dead one and are marked failed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  CHANNELS,
  claimNextTrainingRun,
  countNewFeedback,
  failInterruptedTrainingRuns,
  finishTrainingRun,
  getLatestStartedTrainingRun,
  listModelVersions,
  mergeTrainingRunConfig,
  notify,
  queueTrainingRunIfIdle,
  tryTrainerLock,
  updateTrainingRunMetrics,
  type Db,
  type JsonObject,
  type TrainerLock,
  type TrainingRun,
} from '../../db/index.ts';
import type { RunProgress } from './child-protocol.ts';
import { prepareRunJob } from './prepare-job.ts';
import { publishRun, type Published } from './publish.ts';
import { parseRunOverrides, resolveRunSettings } from './run-config.ts';
import { runInChild } from './run-in-child.ts';
import type { TrainerConfig } from './trainer-settings.ts';

interface OnlineTrainerOptions {
  db: Db;
  /** Set on PostgreSQL: the advisory lock needs its own connection. */
  connectionString?: string;
  config: TrainerConfig;
  log: Logger;
  /** Told after a run published versions (the embedded server syncs its model at once). */
  onPublished?: (p: Published) => void;
}

const PROGRESS_WRITE_MS = 1000;

export class OnlineTrainer {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | null = null;
  private current: { abort: AbortController; done: Promise<void> } | null = null;
  private lock: TrainerLock | null = null;
  private stopped = false;
  private checks = 0;
  private readonly log: Logger;

  constructor(private readonly opts: OnlineTrainerOptions) {
    this.log = opts.log;
  }

  start(): void {
    this.schedule(0);
  }

  /** How many times the feedback has been counted against the schedule so far: the poll, observable. */
  get scheduleChecks(): number {
    return this.checks;
  }

  /** Checks the schedule and the queue now (after a run was queued). */
  wake(): void {
    if (!this.stopped) this.schedule(0);
  }

  /** Stops polling; a run in progress is killed and recorded as cancelled. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const current = this.current;
    if (current) {
      current.abort.abort('the trainer stopped');
      await current.done;
    }
    await this.lock?.release();
    this.lock = null;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking ??= this.tick()
        .catch((err) => this.log.warn({ err }, `trainer check failed: ${(err as Error).message}`))
        .finally(() => {
          this.ticking = null;
          this.schedule(this.opts.config.pollMs);
        });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.current || this.stopped) return;
    if (!(await this.lead())) return;
    await this.queueIfDue();
    this.checks++;
    const run = await claimNextTrainingRun(this.opts.db);
    if (!run) return;
    const abort = new AbortController();
    const entry = { abort, done: Promise.resolve() };
    entry.done = this.execute(run, abort.signal).finally(() => {
      this.current = null;
      this.wake();
    });
    this.current = entry;
  }

  /** True when this process may train (it holds the lock, or the database is embedded). */
  private async lead(): Promise<boolean> {
    const first = this.lock === null;
    if (this.opts.connectionString) {
      if (this.lock?.held) return true;
      this.lock = await tryTrainerLock(this.opts.connectionString, (err) => this.log.error({ err }, 'lost the trainer lock; another trainer may take over'));
      if (!this.lock) return false;
      this.log.info('holding the trainer lock: this process trains');
    } else if (!first) {
      return true;
    } else {
      this.lock = { held: true, stillHeld: async () => true, release: async () => {} };
    }
    await this.failLeftoverRuns();
    return true;
  }

  private async failLeftoverRuns(): Promise<void> {
    const ids = await failInterruptedTrainingRuns(this.opts.db, 'the trainer stopped before the run finished (process killed or crashed); nothing it trained was published');
    if (ids.length === 0) return;
    this.log.warn({ runs: ids }, 'marked runs left running by a stopped trainer as failed');
    // Their checkpoints were written atomically but never published: remove them unless a version row points there.
    const paths = (await listModelVersions(this.opts.db, { limit: 100_000 })).map((v) => v.checkpoint_path);
    for (const id of ids) {
      const dir = join(this.opts.config.checkpointDir, `run-${id}`);
      if (!paths.some((p) => p.startsWith(dir))) await rm(dir, { recursive: true, force: true });
    }
  }

  private async queueIfDue(): Promise<void> {
    const { minNewFeedback, intervalSec } = this.opts.config;
    if (minNewFeedback <= 0) return;
    const last = await getLatestStartedTrainingRun(this.opts.db);
    const since = last?.started_at ?? null;
    if (since && Date.now() - since.getTime() < intervalSec * 1000) return;
    const fresh = await countNewFeedback(this.opts.db, since);
    const n = fresh.pairs + fresh.ratings;
    if (n < minNewFeedback) return;
    const run = await queueTrainingRunIfIdle(this.opts.db, { config: { trigger: 'schedule', new_pairs: fresh.pairs, new_ratings: fresh.ratings } });
    if (run) this.log.info({ run: run.id, new_pairs: fresh.pairs, new_ratings: fresh.ratings }, 'training run queued by the schedule');
  }

  private async execute(run: TrainingRun, signal: AbortSignal): Promise<void> {
    const { db, config } = this.opts;
    const log = this.log.child({ run: run.id });
    const t0 = performance.now();
    let published: Published | null = null;
    let lastWrite = 0;
    let pendingWrite: Promise<void> = Promise.resolve();
    const record = (metrics: JsonObject) => {
      pendingWrite = pendingWrite
        .then(() => updateTrainingRunMetrics(db, run.id, metrics))
        .catch((err) => log.warn({ err }, `could not record run progress: ${(err as Error).message}`));
    };
    try {
      const requested = parseRunOverrides((run.config as { overrides?: unknown }).overrides ?? {}, `run ${run.id} config.overrides`);
      const settings = resolveRunSettings(config.overrides, requested);
      await mergeTrainingRunConfig(db, run.id, { settings: JSON.parse(JSON.stringify(settings)) });
      log.info('training run started');
      const prepared = await prepareRunJob(db, { runId: run.id, settings, checkpointRoot: config.checkpointDir, reference: config.reference });
      await mergeTrainingRunConfig(db, run.id, { policy_version_id: prepared.activePolicyVersionId, reward_version_id: prepared.activeRewardVersionId, reference: prepared.job.referenceDir });
      record({ phase: 'preparing', progress: 0, ...prepared.counts });
      const result = await runInChild(prepared.job, {
        signal,
        onLog: (line) => log.debug({ child: line }),
        onProgress: (m: RunProgress) => {
          const now = performance.now();
          if (now - lastWrite < PROGRESS_WRITE_MS) return;
          lastWrite = now;
          record(m);
        },
      });
      await pendingWrite;
      published = await publishRun(db, result, {
        activePolicyVersionId: prepared.activePolicyVersionId,
        activeRewardVersionId: prepared.activeRewardVersionId,
        trainedPairIds: prepared.trainedPairIds,
        lockHeld: (trx) => this.lock?.stillHeld(trx) ?? Promise.resolve(false),
      });
      const gate = result.policy.gate;
      const last = result.policy.ppo.at(-1);
      await finishTrainingRun(db, run.id, {
        status: 'succeeded',
        policyVersionId: published.policyVersionId,
        rewardVersionId: published.rewardVersionId,
        metrics: {
          phase: published.activated ? 'published' : 'rejected by the gate',
          progress: 1,
          seconds: Math.round((performance.now() - t0) / 100) / 10,
          rm_kept: result.reward.kept,
          gate_passed: gate.passed,
          gate_reasons: gate.reasons,
          gate_reward: gate.candidate.reward,
          active_reward: gate.active.reward,
          gate_kl: gate.candidate.kl,
          ...(last ? { ppo_reward: last.reward_mean, ppo_kl: last.kl } : {}),
        },
      });
      log.info({ policy_version: published.policyVersionId, activated: published.activated, reasons: gate.reasons, seconds: result.seconds }, published.activated ? 'candidate published and activated' : 'candidate rejected by the gate');
      await notify(db, CHANNELS.models, String(published.policyVersionId)).catch((err) => log.warn({ err }, 'NOTIFY failed; servers will sync on their next periodic check'));
      this.opts.onPublished?.(published);
    } catch (err) {
      await pendingWrite;
      const message = (err as Error).message;
      const cancelled = signal.aborted;
      log[cancelled ? 'warn' : 'error']({ err }, `training run ${cancelled ? 'cancelled' : 'failed'}: ${message}`);
      if (!published) await rm(join(config.checkpointDir, `run-${run.id}`), { recursive: true, force: true }).catch(() => {});
      await finishTrainingRun(db, run.id, { status: cancelled ? 'cancelled' : 'failed', error: message, metrics: { seconds: Math.round((performance.now() - t0) / 100) / 10 } }).catch((e) =>
        log.error({ err: e }, `could not record the run's end: ${(e as Error).message}`),
      );
    }
  }
}
