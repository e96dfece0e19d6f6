/**
 * A chat reply as text: renders the conversation with the chat template (cropping old turns to fit
 * the window), and turns the decoder's token events into UTF-8-safe text deltas, honouring stop
 * strings. `ReplyText` does the token->text half for any driver (a request alone, or the server's
 * shared batch); `generateReply` wires both halves to a request running alone.
 */
import type { GPT } from '../gpt/gpt.ts';
import type { GPTConfig } from '../gpt/config.ts';
import { renderPrompt, StreamDecoder, type ChatMessage, type Tokenizer } from '../tokenizer/index.ts';
import type { FinishReason, GenerationControl, GenerationEvent } from './decoder.ts';
import { generate } from './generate.ts';
import { parseDecodeOptions, type DecodeOptions } from './options.ts';
import { StopStringFilter } from './stop-strings.ts';

export type ReplyEvent =
  | { type: 'delta'; text: string }
  | {
      type: 'done';
      text: string;
      finishReason: FinishReason;
      /** Tokens generated (end-of-turn excluded) and tokens in the (possibly cropped) prompt. */
      completionTokens: number;
      promptTokens: number;
      /** Model log-probability of the reply; null when a stop string cut it. */
      logprob: number | null;
      seed?: number;
    };

interface ChatPrompt {
  ids: number[];
  /** End of turn, the ids the repetition penalty leaves alone, and the ids a reply never contains. */
  control: Omit<GenerationControl, 'signal'>;
}

/**
 * The prompt for a reply: the conversation rendered with the generation prompt, oldest turns dropped
 * so that at least min(max_new_tokens, context/2) tokens of room remain.
 */
export function chatPrompt(config: GPTConfig, tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: DecodeOptions): ChatPrompt {
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but the model expects ${config.vocabSize}`);
  }
  const room = Math.max(4, config.context - Math.max(1, Math.min(opts.max_new_tokens, Math.floor(config.context / 2))));
  const ids = renderPrompt(tokenizer, messages, room).ids;
  const special = tokenizer.special;
  const specials = Object.values(special);
  // A reply may end its turn but never emit another special token (a role marker, BOS, padding).
  return { ids, control: { eotId: special.eot, exempt: specials, banned: specials.filter((id) => id !== special.eot) } };
}

/** Token events in, text events out. `stopped` turns true when a stop string ended the reply. */
export class ReplyText {
  private readonly decoder: StreamDecoder;
  private readonly stops: StopStringFilter;
  private text = '';
  private count = 0;
  private ended = false;

  constructor(
    tokenizer: Tokenizer,
    stop: readonly string[],
    private readonly promptTokens: number,
  ) {
    this.decoder = new StreamDecoder(tokenizer, { skipSpecial: true });
    this.stops = new StopStringFilter(stop);
  }

  /** True once the reply has ended (done produced); further events are ignored. */
  get isDone(): boolean {
    return this.ended;
  }

  push(ev: GenerationEvent): ReplyEvent[] {
    if (this.ended) return [];
    const out: ReplyEvent[] = [];
    if (ev.type === 'tokens') {
      let piece = '';
      for (const id of ev.ids) piece += this.decoder.push(id);
      this.count += ev.ids.length;
      this.emit(out, this.stops.push(piece));
      if (this.stops.hasStopped) this.finish(out, 'stop', this.count, null);
      return out;
    }
    this.emit(out, this.stops.push(this.decoder.flush()) + this.stops.flush());
    this.finish(out, this.stops.hasStopped ? 'stop' : ev.finishReason, ev.ids.length, this.stops.hasStopped ? null : ev.logprob, ev.seed);
    return out;
  }

  private emit(out: ReplyEvent[], raw: string): void {
    if (!raw) return;
    // A byte-level model can emit NUL; it is never meaningful in a reply, and PostgreSQL text cannot hold it.
    const shown = raw.replaceAll('\u0000', '\uFFFD');
    this.text += shown;
    out.push({ type: 'delta', text: shown });
  }

  private finish(out: ReplyEvent[], finishReason: FinishReason, completionTokens: number, logprob: number | null, seed?: number): void {
    this.ended = true;
    out.push({ type: 'done', text: this.text, finishReason, completionTokens, promptTokens: this.promptTokens, logprob, seed });
  }
}

/** A reply to `messages` from a model running this request alone. */
export async function* generateReply(
  model: GPT,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: unknown,
  signal?: AbortSignal,
): AsyncGenerator<ReplyEvent> {
  const opts = parseDecodeOptions(options);
  const prompt = chatPrompt(model.config, tokenizer, messages, opts);
  const text = new ReplyText(tokenizer, opts.stop, prompt.ids.length);
  const gen = generate(model, prompt.ids, opts, { ...prompt.control, signal });
  try {
    for await (const ev of gen) {
      yield* text.push(ev);
      if (text.isDone) return;
    }
  } finally {
    await gen.return(undefined);
  }
}
