/**
 * Frequent replies: the few texts that answer many different lines ("What?", "Yes.", "I don't
 * know."). Each is a small share of the corpus, but together they are the likeliest reply to almost
 * any prompt. `sft --drop-frequent-replies=N` leaves them out of the loss (they stay as context); on
 * the valid split it halved beam search's top reply share but doubled greedy's, so it is off by
 * default (docs/recipe.md).
 */
import type { ChatMessage } from '../../model/tokenizer/index.ts';

/** A reply's text as compared for frequency: lower case, letters and apostrophes, single spaces. */
export function replyKey(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z']+/g, ' ')
    .trim();
}

/** The reply keys that occur at least `minCount` times among the assistant messages of `dialogues`. */
export function frequentReplies(dialogues: readonly { messages: readonly ChatMessage[] }[], minCount: number): Set<string> {
  const counts = new Map<string, number>();
  for (const d of dialogues) {
    for (const m of d.messages) {
      if (m.role !== 'assistant') continue;
      const key = replyKey(m.content);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return new Set([...counts].filter(([, n]) => n >= minCount).map(([key]) => key));
}
