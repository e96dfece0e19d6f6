/**
 * The online trainer's settings, read from the environment by the server (embedded trainer) and by
 * `npm run trainer` alike. `TRAINER_SETTINGS` has the server config's shape (variable → flag, schema,
 * doc), so the server lists them with its own and docs/configuration.md's table covers both.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseRunOverrides, resolveRunSettings, type RunOverrides } from './run-config.ts';

export interface TrainerConfig {
  /** New pairs plus new/changed ratings since the last run that start a run; 0: only on request. */
  minNewFeedback: number;
  /** Least time between scheduled runs, seconds. */
  intervalSec: number;
  /** How often the schedule and the queue are checked, ms. */
  pollMs: number;
  /** Absolute; each run writes `run-<id>/{policy,reward}` under it. */
  checkpointDir: string;
  /** Absolute reference-model checkpoint; undefined: the first policy of the active one's lineage. */
  reference: string | undefined;
  /** TRAIN_CONFIG, validated. */
  overrides: RunOverrides;
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/;
const duration = z.string().transform((s, ctx) => {
  const m = DURATION.exec(s.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as 600, 90s, 10m or 1h' });
    return z.NEVER;
  }
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
});
const int = (min: number, max: number) =>
  z.coerce.number({ error: 'must be an integer' }).int({ error: `must be an integer in [${min}, ${max}]` }).min(min, { error: `must be an integer in [${min}, ${max}]` }).max(max, { error: `must be an integer in [${min}, ${max}]` });

export const TRAINER_SETTINGS = {
  TRAIN_MIN_NEW_PAIRS: { flag: undefined, schema: int(0, 1_000_000).default(20), doc: 'new preference pairs plus new ratings since the last run that start a run (0: runs only on POST /api/admin/train)' },
  TRAIN_INTERVAL: { flag: undefined, schema: duration.default(600), doc: 'least time between scheduled runs (600, 90s, 10m, 1h)' },
  TRAIN_POLL_MS: { flag: undefined, schema: int(100, 3_600_000).default(5000), doc: 'how often the trainer checks the schedule and the run queue' },
  CHECKPOINT_DIR: { flag: undefined, schema: z.string().min(1).optional(), doc: 'where runs write candidate checkpoints (shared storage when trainer and servers are on different hosts); default STATE_DIR/checkpoints' },
  TRAIN_REFERENCE: { flag: undefined, schema: z.string().min(1).optional(), doc: 'KL reference checkpoint for PPO; default: the first policy of the active one\'s lineage (the SFT model served at first start)' },
  TRAIN_CONFIG: { flag: undefined, schema: z.string().min(1).optional(), doc: 'run settings as JSON, or @file.json: {"ppo": {"iterations": 20}, "rm": {"maxSteps": 100}, "gate": {...}, "timeBudgetSec": 1800, ...} (see trainer/online/run-config.ts)' },
} as const;

type TrainerSettingValues = { [K in keyof typeof TRAINER_SETTINGS]: z.output<(typeof TRAINER_SETTINGS)[K]['schema']> };

/** Builds the trainer config from validated values; TRAIN_CONFIG problems are thrown as one message. */
export function trainerConfigFrom(v: TrainerSettingValues, { stateDir, cwd }: { stateDir: string; cwd: string }): TrainerConfig {
  let overrides: RunOverrides = {};
  if (v.TRAIN_CONFIG) {
    const fromFile = v.TRAIN_CONFIG.startsWith('@');
    let text = v.TRAIN_CONFIG;
    if (fromFile) {
      try {
        text = readFileSync(resolve(cwd, text.slice(1)), 'utf8');
      } catch (err) {
        throw new Error(`TRAIN_CONFIG: cannot read ${text.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`TRAIN_CONFIG: not valid JSON (${(err as Error).message})`);
    }
    overrides = parseRunOverrides(json, 'TRAIN_CONFIG');
    resolveRunSettings(overrides);
  }
  return {
    minNewFeedback: v.TRAIN_MIN_NEW_PAIRS,
    intervalSec: v.TRAIN_INTERVAL,
    pollMs: v.TRAIN_POLL_MS,
    checkpointDir: resolve(cwd, v.CHECKPOINT_DIR ?? resolve(stateDir, 'checkpoints')),
    reference: v.TRAIN_REFERENCE === undefined ? undefined : resolve(cwd, v.TRAIN_REFERENCE),
    overrides,
  };
}
