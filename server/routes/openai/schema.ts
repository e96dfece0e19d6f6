/**
 * The OpenAI chat-completions request as this server reads it, and its mapping to our decoding
 * options. Unknown fields are ignored (as OpenAI-compatible servers do); fields whose meaning we
 * cannot honour (n > 1, tools) are refused. Extensions: strategy, beam_width, repetition_penalty,
 * length_penalty, no_repeat_ngram_size, top_k.
 */
import { z } from 'zod';
import type { ChatMessage } from '../../../model/tokenizer/index.ts';
import { storableText, wellFormed, type Decoding } from '../../protocol.ts';

// Stored as messages: no U+0000, which PostgreSQL refuses; lone surrogates as U+FFFD (protocol.ts).
const text = z.string().refine(storableText, { error: 'message content must not contain U+0000 (NUL)' }).transform(wellFormed);
const part = z.object({ type: z.literal('text', { error: 'only text content parts are supported' }), text });
const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant'], { error: 'role must be system, developer, user or assistant' }),
  content: z.union([text, z.array(part)], { error: 'content must be a string or an array of text parts' }).nullable(),
});
const opt = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

export const CompletionRequestSchema = z.object({
  model: opt(z.string()),
  messages: z.array(message, { error: 'messages must be an array' }).min(1, { error: 'messages must not be empty' }).max(512, { error: 'at most 512 messages' }),
  stream: opt(z.boolean()),
  stream_options: opt(z.object({ include_usage: opt(z.boolean()) })),
  max_tokens: opt(z.number().int()),
  max_completion_tokens: opt(z.number().int()),
  temperature: opt(z.number()),
  top_p: opt(z.number()),
  seed: opt(z.number().int()),
  stop: opt(z.union([z.string(), z.array(z.string())])),
  n: opt(z.literal(1, { error: 'n must be 1 (one reply per request)' })),
  tools: z.undefined({ error: 'tools are not supported' }).optional(),
  // Extensions
  strategy: opt(z.string()),
  beam_width: opt(z.number()),
  repetition_penalty: opt(z.number()),
  length_penalty: opt(z.number()),
  no_repeat_ngram_size: opt(z.number()),
  top_k: opt(z.number()),
});

type CompletionRequest = z.output<typeof CompletionRequestSchema>;

export function chatMessages(req: CompletionRequest): ChatMessage[] {
  return req.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''),
  }));
}

/** Decoding options (unvalidated: resolveDecoding checks them). Sampling parameters without a strategy mean "sample". */
export function decodingOf(req: CompletionRequest): Decoding {
  const sampling = [req.temperature, req.top_p, req.top_k, req.seed].some((v) => v !== undefined && v !== null);
  const entries = {
    strategy: req.strategy ?? (sampling ? 'sample' : undefined),
    max_new_tokens: req.max_completion_tokens ?? req.max_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    top_k: req.top_k,
    seed: req.seed,
    stop: typeof req.stop === 'string' ? [req.stop] : req.stop,
    beam_width: req.beam_width,
    repetition_penalty: req.repetition_penalty,
    length_penalty: req.length_penalty,
    no_repeat_ngram_size: req.no_repeat_ngram_size,
  };
  return Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined && v !== null)) as Decoding;
}
