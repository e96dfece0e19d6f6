/**
 * `--key=value` (or `--key value`) flags into a stage's typed config: every field has a default,
 * unknown flags and values of the wrong type are errors naming the flag, and the schema checks ranges.
 * Flags are kebab-case (`--max-steps=100`); booleans may be bare (`--resume`).
 */
import { z } from 'zod';

export class FlagError extends Error {
  override readonly name = 'FlagError';
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const camel = (flag: string) => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * Parses argv against `schema` (a zod object whose every field has a default). Returns the resolved
 * config (defaults filled) — the object to save with checkpoints.
 */
export function parseFlags<S extends z.ZodObject>(argv: string[], schema: S): z.infer<S> {
  const defaults = schema.parse({}) as Record<string, unknown>;
  const raw: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new FlagError(`unexpected argument '${arg}' (flags look like --key=value)`);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const key = camel(name);
    if (!(key in defaults)) {
      throw new FlagError(`unknown flag --${name}; known: ${Object.keys(defaults).map((k) => `--${kebab(k)}`).join(' ')}`);
    }
    const kind = typeof defaults[key];
    // `--key value` works too for flags that take a value (booleans never consume the next word).
    const next = argv[i + 1];
    const text = eq >= 0 ? arg.slice(eq + 1) : kind !== 'boolean' && next !== undefined && !next.startsWith('--') ? argv[++i] : undefined;
    if (kind === 'boolean') {
      if (text === undefined || text === 'true') raw[key] = true;
      else if (text === 'false') raw[key] = false;
      else throw new FlagError(`--${name} takes true or false (got '${text}')`);
    } else if (text === undefined) {
      throw new FlagError(`--${name} needs a value: --${name}=...`);
    } else if (kind === 'number') {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw new FlagError(`--${name} must be a number (got '${text}')`);
      raw[key] = n;
    } else {
      raw[key] = text;
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0] ?? '');
    throw new FlagError(`--${kebab(key)}: ${issue.message}`);
  }
  return parsed.data;
}

/** Help text listing every flag with its default. */
export function describeFlags(schema: z.ZodObject): string {
  const defaults = schema.parse({}) as Record<string, unknown>;
  return Object.entries(defaults)
    .map(([k, v]) => `  --${kebab(k)}=${JSON.stringify(v)}${schema.shape[k]?.description ? `  ${schema.shape[k].description}` : ''}`)
    .join('\n');
}

/** The config keys named on the command line (to tell given values from defaults). */
export function explicitKeys(argv: string[]): Set<string> {
  return new Set(argv.filter((a) => a.startsWith('--')).map((a) => camel(a.slice(2).split('=')[0])));
}

