/**
 * Rollouts: the policy samples one reply per prompt, all in one continuous batch. Each sample has
 * its own seed, so a rollout is reproducible. Replies may end their turn but never emit other
 * special tokens.
 */
import type { GPT } from '../../model/gpt/gpt.ts';
import { Batcher } from '../../model/decode/batcher.ts';
import { chatPrompt } from '../../model/decode/chat-reply.ts';
import type { GenerationEvent } from '../../model/decode/decoder.ts';
import { createDecoder } from '../../model/decode/generate.ts';
import { parseDecodeOptions } from '../../model/decode/options.ts';
import type { ChatMessage, Tokenizer } from '../../model/tokenizer/index.ts';

interface Rollout {
  promptIds: number[];
  /** Reply tokens plus the end-of-turn when the reply ended. */
  actions: number[];
  reply: string;
  ended: boolean;
}

export async function sampleReplies(
  policy: GPT,
  tokenizer: Tokenizer,
  prompts: ChatMessage[][],
  o: { maxNewTokens: number; temperature: number; topK: number; topP: number; seed: number },
): Promise<Rollout[]> {
  const batcher = new Batcher(policy, Math.max(1, prompts.length));
  return Promise.all(
    prompts.map(async (messages, i) => {
      const opts = parseDecodeOptions({ strategy: 'sample', max_new_tokens: o.maxNewTokens, temperature: o.temperature, top_k: o.topK, top_p: o.topP, seed: (o.seed + i) >>> 0 });
      const p = chatPrompt(policy.config, tokenizer, messages, opts);
      let done: Extract<GenerationEvent, { type: 'done' }> | undefined;
      await batcher.run({
        prompt: p.ids,
        decoder: createDecoder(p.ids, opts, p.control),
        onEvents: (evs) => {
          for (const e of evs) if (e.type === 'done') done = e;
        },
      });
      const ids = done?.ids ?? [];
      const ended = done?.finishReason === 'eot';
      return { promptIds: p.ids, actions: ended ? [...ids, tokenizer.special.eot] : ids, reply: tokenizer.decode(ids, { skipSpecial: true }), ended };
    }),
  );
}
