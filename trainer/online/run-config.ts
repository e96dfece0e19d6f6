/**
 * An online run's settings: ONLINE_RUN_DEFAULTS plus overrides (from TRAIN_CONFIG or the admin API's
 * request body), plus what the run reads from the feedback store. Overrides are validated field by
 * field, so a typo or an out-of-range value is an error naming it, never a silent default.
 */
import { z } from 'zod';
import { PpoConfigSchema } from '../ppo/config.ts';
import { RmTrainConfigSchema } from '../reward/config.ts';
import { GATE_DEFAULTS, GateConfigSchema } from './gate.ts';
import { ONLINE_RUN_DEFAULTS, type OnlineRunConfig } from './online-run.ts';

export interface RunSettings extends OnlineRunConfig {
  /** Every n-th user pair (by id) is held out of reward-model training to judge it. */
  heldOutEvery: number;
  /** Most recent user prompts mixed into the PPO prompts. */
  maxUserPrompts: number;
  /** Share of PPO prompts taken from the shipped corpus prompts when there are user prompts too. */
  corpusPromptShare: number;
  /** Weight of bootstrap pairs built from the shipped dialogues (0 leaves them out of training). */
  bootstrapPairs: number;
}

const RUN_SETTINGS_DEFAULTS: RunSettings = {
  ...ONLINE_RUN_DEFAULTS,
  gate: { ...GATE_DEFAULTS },
  heldOutEvery: 5,
  maxUserPrompts: 256,
  corpusPromptShare: 0.5,
  bootstrapPairs: 200,
};

const num = (min: number, max: number) => z.number().min(min).max(max);
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/**
 * Each group is checked by its own schema (reward model, PPO, gate); an override names only what it
 * changes (parseRunOverrides drops the defaults the schema fills in).
 */
const RunOverridesSchema = z
  .object({
    rm: RmTrainConfigSchema.partial(),
    userWeight: num(0, 1000),
    ppo: PpoConfigSchema.partial(),
    gate: GateConfigSchema.partial(),
    timeBudgetSec: num(1, 7 * 24 * 3600),
    heldOutEvery: int(0, 1000),
    maxUserPrompts: int(0, 100_000),
    corpusPromptShare: num(0, 1),
    bootstrapPairs: int(0, 100_000),
  })
  .partial()
  .strict();
export type RunOverrides = z.infer<typeof RunOverridesSchema>;

export class RunConfigError extends Error {
  override readonly name = 'RunConfigError';
}

/** Validates `input` as overrides; the error lists every bad field with its path. */
export function parseRunOverrides(input: unknown, where: string): RunOverrides {
  const parsed = RunOverridesSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new RunConfigError(`${where}: ${problems.join('; ')}`);
  }
  const given = input as Record<string, unknown>;
  const { rm, ppo, gate, ...rest } = parsed.data;
  return { ...rest, ...(rm && { rm: named(rm, given.rm) }), ...(ppo && { ppo: named(ppo, given.ppo) }), ...(gate && { gate: named(gate, given.gate) }) };
}

/** The fields of a parsed group that its input named. */
function named<T extends object>(parsed: T, input: unknown): Partial<T> {
  const keys = new Set(Object.keys(input as object));
  return Object.fromEntries(Object.entries(parsed).filter(([k]) => keys.has(k))) as Partial<T>;
}

/** Later overrides win, field by field (nested objects merged). */
export function resolveRunSettings(...overrides: RunOverrides[]): RunSettings {
  let s: RunSettings = { ...RUN_SETTINGS_DEFAULTS, rm: { ...RUN_SETTINGS_DEFAULTS.rm }, ppo: { ...RUN_SETTINGS_DEFAULTS.ppo }, gate: { ...RUN_SETTINGS_DEFAULTS.gate } };
  for (const o of overrides) {
    s = {
      ...s,
      ...o,
      rm: RmTrainConfigSchema.parse({ ...s.rm, ...o.rm }),
      ppo: PpoConfigSchema.parse({ ...s.ppo, ...o.ppo }),
      gate: GateConfigSchema.parse({ ...s.gate, ...o.gate }),
    };
  }
  if (s.ppo.miniBatchSize > s.ppo.batchSize) throw new RunConfigError(`ppo.miniBatchSize (${s.ppo.miniBatchSize}) must not exceed ppo.batchSize (${s.ppo.batchSize})`);
  return s;
}
