/**
 * Command-line pieces the model commands share: a usage error (exit code 2), strict `parseArgs` with
 * its messages on one line, and the `--preset` check.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PRESET_NAMES, type PresetName } from '../gpt/config.ts';

/** Bad command line or options: the commands exit with code 2. */
export class UsageError extends Error {}

/** node:util parseArgs, strict, no positionals; its errors become one-line UsageErrors. */
export function parseFlags<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\s*\n\s*/g, ' '));
  }
}

export function parsePreset(value: string | undefined, fallback: PresetName): PresetName {
  const preset = value ?? fallback;
  if (!(PRESET_NAMES as string[]).includes(preset)) {
    throw new UsageError(`--preset: unknown preset '${preset}'; expected one of ${PRESET_NAMES.join(', ')}`);
  }
  return preset as PresetName;
}
