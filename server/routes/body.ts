// Reading a JSON body against a schema (bad_request naming the field) and numeric path ids.
import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError } from '../errors.ts';
import { validate } from '../validation.ts';

export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.output<T>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ApiError('bad_request', 'the body must be JSON (Content-Type: application/json)');
  }
  return validate(schema, body);
}

export function idParam(c: Context, name = 'id'): number {
  const raw = c.req.param(name) ?? '';
  const id = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) throw new ApiError('bad_request', `${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return id;
}
