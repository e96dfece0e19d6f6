/**
 * `npm run generate -- [--checkpoint DIR] --prompt TEXT [decoding flags] [--system TEXT] [--stream]`
 *
 * Replies to one user message with a checkpoint. Decoding flags are the snake_case decoding options in
 * kebab-case (`--beam-width 5` -> beam_width: 5); their ranges are checked by `parseDecodeOptions`.
 * stdout carries only the reply and a newline; logs go to stderr. Exit 0 on success, 2 for bad usage
 * or options, 1 for any other failure (missing or corrupt checkpoint, ...), always with a one-line
 * message on stderr.
 */
import { parseFlags, runCommand, UsageError } from './args.ts';
import { initEngine } from '../backend.ts';
import { generateReply } from '../decode/chat-reply.ts';
import { DecodeOptionsError, parseDecodeOptions, type DecodeOptions } from '../decode/options.ts';
import { loadModel } from '../checkpoint/gpt-checkpoint.ts';
import type { ChatMessage } from '../tokenizer/index.ts';
import { resolveDefaultCheckpoint } from '../checkpoint/default-checkpoint.ts';

const USAGE =
  'usage: npm run generate -- [--checkpoint DIR] --prompt TEXT [--system TEXT] [--stream] ' +
  '[--strategy greedy|beam_search|sample] [--max-new-tokens N] [--beam-width N] [--length-penalty X] ' +
  '[--repetition-penalty X] [--no-repeat-ngram-size N] [--temperature X] [--top-k N] [--top-p X] [--seed N] [--stop S]...';

/** Numeric decoding flags -> option names. Integer-ness and ranges are left to parseDecodeOptions. */
const NUMERIC_FLAGS = {
  'max-new-tokens': 'max_new_tokens',
  'beam-width': 'beam_width',
  'length-penalty': 'length_penalty',
  'repetition-penalty': 'repetition_penalty',
  'no-repeat-ngram-size': 'no_repeat_ngram_size',
  temperature: 'temperature',
  'top-k': 'top_k',
  'top-p': 'top_p',
  seed: 'seed',
} as const satisfies Record<string, keyof DecodeOptions>;

/** A plain decimal number: no hex, no `Infinity`, no empty string or whitespace (which Number() accepts). */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function parseNumber(flag: string, raw: string): number {
  const value = Number(raw);
  if (!DECIMAL.test(raw) || !Number.isFinite(value)) throw new UsageError(`--${flag}: expected a number, got '${raw}'`);
  return value;
}

const flagOf = (option: string): string => `--${option.replace(/_/g, '-')}`;

interface GenerateArgs {
  checkpoint: string | undefined;
  prompt: string;
  system: string | undefined;
  stream: boolean;
  options: DecodeOptions;
}

/** Parses and validates the command line; throws UsageError. Returns 'help' for --help. */
function parseGenerateArgs(argv: string[]): GenerateArgs | 'help' {
  const values = parseFlags(argv, {
    checkpoint: { type: 'string' },
    prompt: { type: 'string' },
    system: { type: 'string' },
    stream: { type: 'boolean' },
    strategy: { type: 'string' },
    stop: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
    ...Object.fromEntries(Object.keys(NUMERIC_FLAGS).map((f) => [f, { type: 'string' as const }])),
  });
  if (values.help) return 'help';
  const raw: Record<string, unknown> = {};
  if (values.strategy !== undefined) raw.strategy = values.strategy;
  if (values.stop !== undefined) raw.stop = values.stop;
  for (const [flag, option] of Object.entries(NUMERIC_FLAGS)) {
    const v = (values as Record<string, unknown>)[flag];
    if (typeof v === 'string') raw[option] = parseNumber(flag, v);
  }
  let options: DecodeOptions;
  try {
    options = parseDecodeOptions(raw);
  } catch (err) {
    if (err instanceof DecodeOptionsError) throw new UsageError(`${flagOf(err.option)}: ${err.message}`);
    throw err;
  }
  if (values.prompt === undefined) throw new UsageError('--prompt TEXT is required');
  if (values.checkpoint === '') throw new UsageError('--checkpoint: empty path');
  return {
    checkpoint: values.checkpoint,
    prompt: values.prompt as string,
    system: values.system as string | undefined,
    stream: Boolean(values.stream),
    options,
  };
}

async function main(argv: string[]): Promise<void> {
  const args = parseGenerateArgs(argv);
  if (args === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  // Resolve before starting the engine, so a missing checkpoint fails fast.
  const dir = args.checkpoint ?? resolveDefaultCheckpoint().dir;
  await initEngine();
  const t0 = performance.now();
  const { model, tokenizer, meta } = await loadModel(dir, { expectKind: 'policy' });
  try {
    process.stderr.write(`[generate] loaded ${dir} (step ${meta.step}, ${meta.config && typeof meta.config === 'object' ? JSON.stringify(meta.config) : ''}) in ${((performance.now() - t0) / 1000).toFixed(1)}s\n`);
    const messages: ChatMessage[] = [];
    if (args.system !== undefined) messages.push({ role: 'system', content: args.system });
    messages.push({ role: 'user', content: args.prompt });
    const t1 = performance.now();
    for await (const ev of generateReply(model, tokenizer, messages, args.options)) {
      if (ev.type === 'delta') {
        if (args.stream) process.stdout.write(ev.text);
      } else {
        process.stdout.write(args.stream ? '\n' : ev.text + '\n');
        const secs = (performance.now() - t1) / 1000;
        process.stderr.write(
          `[generate] ${args.options.strategy}: ${ev.completionTokens} tokens (prompt ${ev.promptTokens}) in ${secs.toFixed(2)}s, ` +
            `finish ${ev.finishReason}${ev.logprob === null ? '' : `, logprob ${ev.logprob.toFixed(2)}`}${ev.seed === undefined ? '' : `, seed ${ev.seed}`}\n`,
        );
      }
    }
  } finally {
    model.dispose();
  }
}

runCommand('generate', () => main(process.argv.slice(2)));
