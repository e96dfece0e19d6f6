/**
 * Command-line pieces the commands share (the model's, the trainer's and the benchmarks'): a usage
 * error (exit code 2), strict `parseArgs` with its messages on one line, the `--preset` check, and
 * the run-and-exit of a command's main.
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

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs a command's main and exits with the code it returns, explicitly: the engine worker, sockets and
 * timers would otherwise keep the process alive. A UsageError exits 2 with its message and a pointer to
 * --help; an error of a class in `exitCodes` exits with that code; any other exits 1. Errors are
 * written to stderr after the command's name, on one line.
 */
export function runCommand(name: string, main: () => Promise<number | void>, exitCodes: [ErrorClass, number][] = []): void {
  main().then(
    (code) => {
      const exit = code ?? 0;
      process.exitCode = exit;
      setImmediate(() => process.exit(exit));
    },
    (err: unknown) => {
      const usage = err instanceof UsageError;
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${name}: ${usage ? message : message.split('\n')[0]}${usage ? ' (see --help)' : ''}\n`);
      process.exit(usage ? 2 : (exitCodes.find(([cls]) => err instanceof cls)?.[1] ?? 1));
    },
  );
}
