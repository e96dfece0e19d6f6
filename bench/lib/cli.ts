/**
 * Flag parsing for `npm run bench` and `npm run load`: node:util parseArgs through the model commands'
 * parser (strict, one-line errors), plus range and list checks whose errors name the flag and what it
 * accepts. A UsageError makes the command exit with code 2.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { parseFlags, runCommand, UsageError } from '../../model/cli/args.ts';

export { runCommand, UsageError };

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseFlags, with an unknown flag's error listing the flags the command takes. */
export function parseCommandLine<O extends Options>(argv: string[], options: O) {
  try {
    return parseFlags(argv, options);
  } catch (err) {
    const unknown = /Unknown option '([^']+)'/.exec((err as Error).message);
    if (!unknown) throw err;
    const allowed = Object.keys(options).map((name) => `--${name}`).join(', ');
    throw new UsageError(`unknown flag ${unknown[1]}; allowed flags: ${allowed}`);
  }
}

/** An integer flag in [min, max]; `fallback` when absent. */
export function intFlag(name: string, value: string | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: expected an integer in [${min}, ${max}], got '${value}'`);
  }
  return n;
}

/** A number flag in [min, max]. */
export function numberFlag(name: string, value: string | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name}: expected a number in [${min}, ${max}], got '${value}'`);
  }
  return n;
}

/** A comma-separated list of integers, each in [min, max], without repeats. */
export function intListFlag(name: string, value: string | undefined, min: number, max: number, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  const items = value.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const item of items) {
    const n = Number(item);
    if (!/^\d+$/.test(item) || n < min || n > max) {
      throw new UsageError(`--${name}: expected comma-separated integers in [${min}, ${max}], got '${value}'`);
    }
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** One of `allowed`. */
export function choiceFlag<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${name}: unknown value '${value}'; expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** A comma-separated subset of `allowed`, in the order of `allowed`. */
export function subsetFlag<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
  if (items.length === 0 || bad.length > 0) {
    throw new UsageError(`--${name}: unknown value${bad.length > 1 ? 's' : ''} '${bad.join(',') || value}'; expected a comma-separated subset of ${allowed.join(', ')}`);
  }
  return allowed.filter((s) => items.includes(s));
}

/** A checkpoint directory (absolute), checked for its meta.json so a typo fails before any server starts. */
export function checkpointFlag(name: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  const dir = resolve(value);
  if (!existsSync(join(dir, 'meta.json'))) throw new UsageError(`--${name}: ${dir} is not a checkpoint directory (no meta.json)`);
  return dir;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * A server URL on this machine. The load and bench tools only talk to loopback servers: pointing them at
 * another host would load someone else's service.
 */
export function loopbackUrlFlag(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--${name}: '${value}' is not a URL; expected e.g. http://127.0.0.1:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--${name}: expected an http:// or https:// URL, got '${value}'`);
  }
  const host = url.hostname;
  if (!LOOPBACK.has(host) && !/^127(\.\d{1,3}){3}$/.test(host)) {
    throw new UsageError(`--${name}: ${host} is not a loopback address; only 127.0.0.0/8, localhost or [::1] are allowed`);
  }
  return url.origin;
}

/** Writes to stdout and waits until it is handed off, so that the exit that follows cannot cut it short. */
export function writeStdout(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
}
