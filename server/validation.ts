// Turning zod issues and decoding options into the server's errors, with the limits named.
import type { z } from 'zod';
import { parseDecodeOptions, type DecodeOptions } from '../model/decode/options.ts';
import type { ServerLimits } from './config.ts';
import { ApiError } from './errors.ts';
import { hasLoneSurrogate } from './protocol.ts';

/** "field.path: message" for the first issue. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}${issue.path.length ? ` in ${issue.path.join('.')}` : ''}`;
  return issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

/** Parses with `schema` or throws bad_request naming the field. */
export function validate<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError('bad_request', describeIssue(parsed.error));
  return parsed.data;
}

/** Default max_new_tokens when the client gives none (capped by MAX_NEW_TOKENS). */
const DEFAULT_MAX_NEW_TOKENS = 64;

/** Decoding options with the model's limits (parseDecodeOptions) and the server's caps; defaults filled. */
export function resolveDecoding(input: unknown, limits: ServerLimits): DecodeOptions {
  const given = (input ?? {}) as Record<string, unknown>;
  // The server's caps first, so that a value over them names the server's limit, not the model's.
  const caps: [string, number, string][] = [
    ['max_new_tokens', limits.maxNewTokens, 'MAX_NEW_TOKENS'],
    ['beam_width', limits.maxBeamWidth, 'MAX_BEAM_WIDTH'],
  ];
  for (const [option, cap, name] of caps) {
    const value = given[option];
    if (typeof value === 'number' && value > cap) {
      throw new ApiError('bad_request', `${option} must be at most ${cap} on this server (${name}); got ${value}`);
    }
  }
  const options = parseDecodeOptions({ max_new_tokens: Math.min(DEFAULT_MAX_NEW_TOKENS, limits.maxNewTokens), ...given });
  // The options are stored as jsonb with the reply, which refuses U+0000 and lone surrogates; neither
  // can match generated text anyway (well-formed, NUL-free: model/decode/chat-reply.ts).
  for (const stop of options.stop ?? []) {
    if (stop.includes('\u0000') || hasLoneSurrogate(stop)) throw new ApiError('bad_request', `stop strings must be well-formed text without U+0000 (got ${JSON.stringify(stop)})`);
  }
  return { ...options, beam_width: Math.min(options.beam_width, limits.maxBeamWidth) };
}

/** A user message within MAX_PROMPT_CHARS, or too_large. */
export function checkPromptSize(chars: number, limits: ServerLimits): void {
  if (chars > limits.maxPromptChars) {
    throw new ApiError('too_large', `the prompt has ${chars} characters; the limit is ${limits.maxPromptChars} (MAX_PROMPT_CHARS)`);
  }
}
