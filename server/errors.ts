/**
 * One error class for everything the server refuses, with a stable code (protocol.ts ErrorCode); REST
 * maps it to an HTTP status in one onError handler, the WebSocket to an `error` frame. Errors of the
 * layers below (feedback store rules, decoding options, run settings, engine busy) are translated by `toApiError`.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { DecodeOptionsError } from '../model/decode/options.ts';
import { RunConfigError } from '../trainer/online/run-config.ts';
import { isConnectionError, RepoError } from '../db/index.ts';
import { EngineBusyError, EngineRequestError } from './engine/engine-host.ts';
import type { ApiErrorBody, ErrorCode } from './protocol.ts';
import type { AppEnv } from './deps.ts';

const STATUS: Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 429 | 500 | 503> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  not_generated: 409,
  too_large: 413,
  busy: 429,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** OpenAI's error `type` for each code, so that OpenAI clients classify our errors. */
const OPENAI_TYPE: Record<ErrorCode, string> = {
  bad_request: 'invalid_request_error',
  unauthorized: 'authentication_error',
  forbidden: 'permission_error',
  not_found: 'not_found_error',
  conflict: 'invalid_request_error',
  not_generated: 'invalid_request_error',
  too_large: 'invalid_request_error',
  busy: 'rate_limit_error',
  rate_limited: 'rate_limit_error',
  unavailable: 'server_error',
  internal: 'server_error',
};

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds, for 429s. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** Any thrown value as an ApiError; unexpected ones become `internal` (and are logged by the caller). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof DecodeOptionsError || err instanceof RunConfigError) return new ApiError('bad_request', err.message);
  if (err instanceof EngineBusyError) return new ApiError('busy', err.message, 1);
  if (err instanceof EngineRequestError) {
    return new ApiError(err.code === 'bad_request' ? 'bad_request' : err.code === 'unavailable' ? 'unavailable' : 'internal', err.message);
  }
  if (err instanceof RepoError) return new ApiError(err.code, err.message);
  // The database is down or restarting: the request may succeed in a moment, and it is not a bug.
  if (isConnectionError(err)) return new ApiError('unavailable', 'the database is unavailable; try again shortly', 5);
  if (err instanceof HTTPException) {
    const code = (Object.keys(STATUS) as ErrorCode[]).find((k) => STATUS[k] === err.status) ?? 'bad_request';
    return new ApiError(code, err.message || code);
  }
  return new ApiError('internal', 'internal error');
}

export function errorBody(err: ApiError): ApiErrorBody {
  return { error: { code: err.code, message: err.message, type: OPENAI_TYPE[err.code] } };
}

/** The app's onError: JSON error body with the code's status; unexpected errors are logged. */
export function onError(err: Error, c: Context<AppEnv>): Response {
  const apiError = toApiError(err);
  if (apiError.code === 'internal') c.get('log')?.error({ err }, 'request failed');
  if (apiError.retryAfter !== undefined) c.header('Retry-After', String(apiError.retryAfter));
  return c.json(errorBody(apiError), STATUS[apiError.code]);
}
