import { renderConversation, type ChatMessage, type Tokenizer } from '../../model/tokenizer/index.ts';
import type { MaskedSequence } from './batches.ts';

/**
 * A dialogue as training sequences of at most `maxLen` tokens: rendered with the chat template (mask
 * on assistant tokens); one too long for the window is split between turns, each piece a dialogue of
 * its own, and a single exchange still too long is cut at `maxLen`. `trainOn` picks the assistant
 * messages the loss covers (default all); a sequence with none left is dropped.
 */
export function dialogueSequences(tok: Tokenizer, messages: readonly ChatMessage[], maxLen: number, trainOn?: (m: ChatMessage) => boolean): MaskedSequence[] {
  const render = (ms: readonly ChatMessage[]) => renderConversation(tok, ms, { trainOn });
  const whole = render(messages);
  if (whole.ids.length <= maxLen) return whole.mask.includes(1) ? [whole] : [];
  const out: MaskedSequence[] = [];
  let start = 0;
  while (start < messages.length) {
    let end = start + 2;
    let best = render(messages.slice(start, Math.min(end, messages.length)));
    while (end + 2 <= messages.length) {
      const next = render(messages.slice(start, end + 2));
      if (next.ids.length > maxLen) break;
      best = next;
      end += 2;
    }
    out.push(best.ids.length > maxLen ? { ids: best.ids.slice(0, maxLen), mask: best.mask.slice(0, maxLen) } : best);
    start = end;
  }
  return out.filter((s) => s.mask.some((m) => m === 1));
}
