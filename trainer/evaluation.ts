/**
 * Evaluation report of a chat checkpoint:
 * - held-out perplexity of the assistant's replies on the Cornell test movies (reply tokens only),
 * - token- and word-level perplexity on WikiText-2 test (word level = exp(total NLL / words), words
 *   counted by whitespace in the detokenised text),
 * - reply statistics for greedy and beam search on a fixed set of held-out Cornell prompts: mean
 *   length in words, distinct-1/2 (unique word n-grams / all word n-grams), the share of replies that
 *   repeat a word 3-gram, and the share of empty replies.
 * Perplexities are computed on a fixed, documented prefix of each test set (`maxTokens`) so the
 * report takes a minute or two on a CPU.
 */
import type { GPT } from '../model/gpt/gpt.ts';
import { Batcher } from '../model/decode/batcher.ts';
import { chatPrompt, ReplyText } from '../model/decode/chat-reply.ts';
import { createDecoder } from '../model/decode/generate.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import type { ChatMessage, Tokenizer } from '../model/tokenizer/index.ts';
import { packedSource, sequenceSource, type BatchSource } from './batching/batches.ts';
import { cornellPaths, loadCornellDialogues, readWikiText, wikiTextPath, wikiTextToDocuments } from './data/index.ts';
import { dialogueSequences } from './batching/dialogue-sequences.ts';
import { packDocuments } from './batching/pack-documents.ts';
import { evaluate } from './train-step.ts';

interface ReplyStats {
  mean_len: number;
  distinct_1: number;
  distinct_2: number;
  repeated_3gram_share: number;
  empty_share: number;
}

export interface EvalReport {
  cornell_test_reply_ppl: number;
  wikitext_test_token_ppl: number;
  wikitext_test_word_ppl: number;
  greedy: ReplyStats;
  beam_search: ReplyStats;
  /** What was measured: token counts, prompts, decoding settings. */
  details: Record<string, unknown>;
  /** A few prompt/reply pairs, for people. */
  samples: { prompt: string; greedy: string; beam_search: string }[];
}

interface EvalOptions {
  corpusDir: string;
  maxTokens: number;
  prompts: number;
  maxNewTokens: number;
  beamWidth: number;
}

const words = (s: string) => s.split(/\s+/).filter(Boolean);

export function replyStats(replies: string[]): ReplyStats {
  const grams = (ws: string[], n: number) => ws.slice(0, Math.max(0, ws.length - n + 1)).map((_, i) => ws.slice(i, i + n).join(' '));
  const all1: string[] = [];
  const all2: string[] = [];
  let repeated = 0;
  let empty = 0;
  let length = 0;
  for (const r of replies) {
    const ws = words(r);
    length += ws.length;
    if (ws.length === 0) empty++;
    all1.push(...ws);
    all2.push(...grams(ws, 2));
    const g3 = grams(ws, 3);
    if (new Set(g3).size < g3.length) repeated++;
  }
  const n = Math.max(1, replies.length);
  return {
    mean_len: length / n,
    distinct_1: all1.length ? new Set(all1).size / all1.length : 0,
    distinct_2: all2.length ? new Set(all2).size / all2.length : 0,
    repeated_3gram_share: repeated / n,
    empty_share: empty / n,
  };
}

/** Batches over a prefix of a source holding about `maxTokens` target tokens. */
function batchesFor(source: BatchSource, maxTokens: number): number {
  let tokens = 0;
  let i = 0;
  while (i < source.batchesPerEpoch && tokens < maxTokens) tokens += source.batch(0, i++).tokens;
  return i;
}

async function replies(model: GPT, tokenizer: Tokenizer, prompts: ChatMessage[][], options: unknown): Promise<string[]> {
  const opts = parseDecodeOptions(options);
  const batcher = new Batcher(model, Math.max(32, opts.beam_width * 8));
  return Promise.all(
    prompts.map(async (messages) => {
      const p = chatPrompt(model.config, tokenizer, messages, opts);
      const text = new ReplyText(tokenizer, opts.stop, p.ids.length);
      let out = '';
      await batcher.run({
        prompt: p.ids,
        decoder: createDecoder(p.ids, opts, p.control),
        onEvents: (evs) => {
          for (const ev of evs.flatMap((e) => text.push(e))) if (ev.type === 'done') out = ev.text;
        },
      });
      return out;
    }),
  );
}

export async function evaluateCheckpoint(model: GPT, tokenizer: Tokenizer, o: EvalOptions): Promise<EvalReport> {
  const T = model.config.context;
  const B = 16;
  // 1. Cornell test replies.
  const { dialogues } = await loadCornellDialogues(cornellPaths(o.corpusDir), { bothOffsets: true });
  const testSeqs = dialogues.test.flatMap((d) => dialogueSequences(tokenizer, d.messages, T + 1));
  const cornell = sequenceSource(testSeqs, { batchSize: B, context: T, seed: 7, padId: tokenizer.special.pad });
  const cornellEval = await evaluate(model, cornell, batchesFor(cornell, o.maxTokens));
  // 2. WikiText-2 test.
  const docs = wikiTextToDocuments(await readWikiText(wikiTextPath(o.corpusDir, 'test')));
  const stream = packDocuments(tokenizer, docs);
  const wiki = packedSource(stream, { batchSize: B, context: T, seed: 7 });
  const wikiBatches = batchesFor(wiki, o.maxTokens);
  const wikiEval = await evaluate(model, wiki, wikiBatches);
  // Words per token over the whole test text converts the token NLL into a per-word one.
  const wordCount = docs.reduce((a, d) => a + words(d).length, 0);
  const wordsPerToken = wordCount / stream.length;
  // 3. Replies to held-out prompts: each test dialogue's first user turn (fixed order, first N).
  const firstTurns = dialogues.test.filter((d) => d.offset === 0).slice(0, o.prompts).map((d) => [d.messages[0]]);
  const common = { max_new_tokens: o.maxNewTokens, repetition_penalty: 1.2 };
  const greedy = await replies(model, tokenizer, firstTurns, { ...common, strategy: 'greedy' });
  const beam = await replies(model, tokenizer, firstTurns, { ...common, strategy: 'beam_search', beam_width: o.beamWidth });
  return {
    cornell_test_reply_ppl: cornellEval.ppl,
    wikitext_test_token_ppl: wikiEval.ppl,
    wikitext_test_word_ppl: Math.exp(wikiEval.loss / wordsPerToken),
    greedy: replyStats(greedy),
    beam_search: replyStats(beam),
    details: {
      cornell_test_reply_tokens: cornellEval.tokens,
      wikitext_test_tokens: wikiEval.tokens,
      words_per_token: wordsPerToken,
      prompts: firstTurns.length,
      decoding: { ...common, beam_width: o.beamWidth },
    },
    samples: firstTurns.slice(0, 8).map((m, i) => ({ prompt: m[0].content, greedy: greedy[i], beam_search: beam[i] })),
  };
}

export function reportMarkdown(name: string, r: EvalReport): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : String(x));
  const lines = [
    `| ${name} | value |`,
    '| --- | --- |',
    `| Cornell test reply perplexity | ${f(r.cornell_test_reply_ppl)} |`,
    `| WikiText-2 test token perplexity | ${f(r.wikitext_test_token_ppl)} |`,
    `| WikiText-2 test word perplexity | ${f(r.wikitext_test_word_ppl)} |`,
    '',
    '| replies | mean words | distinct-1 | distinct-2 | repeated 3-gram | empty |',
    '| --- | --- | --- | --- | --- | --- |',
    ...(['greedy', 'beam_search'] as const).map((k) => `| ${k} | ${f(r[k].mean_len)} | ${f(r[k].distinct_1)} | ${f(r[k].distinct_2)} | ${f(r[k].repeated_3gram_share)} | ${f(r[k].empty_share)} |`),
  ];
  return lines.join('\n');
}
