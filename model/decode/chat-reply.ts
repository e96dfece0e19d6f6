/**
 * A chat reply as text: renders the conversation with the chat template (cropping old turns to fit
 * the window), runs `generate`, and turns token ids into UTF-8-safe text deltas, honouring stop strings.
 */
import type { GPT } from '../gpt/gpt.ts';
import { renderPrompt, StreamDecoder, type ChatMessage, type Tokenizer } from '../tokenizer/index.ts';
import { generate, type FinishReason } from './generate.ts';
import { parseDecodeOptions } from './options.ts';
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

export async function* generateReply(
  model: GPT,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: unknown,
  signal?: AbortSignal,
): AsyncGenerator<ReplyEvent> {
  const opts = parseDecodeOptions(options);
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new Error(`tokenizer has ${tokenizer.vocabSize} ids but the model expects ${model.config.vocabSize}`);
  }
  const context = model.config.context;
  const room = Math.max(4, context - Math.max(1, Math.min(opts.max_new_tokens, Math.floor(context / 2))));
  const prompt = renderPrompt(tokenizer, messages, room).ids;
  const special = tokenizer.special;
  const decoder = new StreamDecoder(tokenizer, { skipSpecial: true });
  const stops = new StopStringFilter(opts.stop);
  let text = '';
  let count = 0;
  // A reply may end its turn but never emit another special token (a role marker, BOS, padding).
  const specials = Object.values(special);
  const banned = specials.filter((id) => id !== special.eot);
  const gen = generate(model, prompt, opts, { eotId: special.eot, exempt: specials, banned, signal });
  try {
    for await (const ev of gen) {
      if (ev.type === 'tokens') {
        let piece = '';
        for (const id of ev.ids) piece += decoder.push(id);
        count += ev.ids.length;
        const shown = stops.push(piece);
        if (shown) {
          text += shown;
          yield { type: 'delta', text: shown };
        }
        if (stops.hasStopped) {
          yield { type: 'done', text, finishReason: 'stop', completionTokens: count, promptTokens: prompt.length, logprob: null };
          return;
        }
      } else {
        const rest = stops.push(decoder.flush()) + stops.flush();
        if (rest) {
          text += rest;
          yield { type: 'delta', text: rest };
        }
        const finishReason = stops.hasStopped ? 'stop' : ev.finishReason;
        yield { type: 'done', text, finishReason, completionTokens: ev.ids.length, promptTokens: prompt.length, logprob: ev.logprob, seed: ev.seed };
        return;
      }
    }
  } finally {
    await gen.return(undefined);
  }
}
