/**
 * Evaluation report of a chat checkpoint:
 * - held-out perplexity of the assistant's replies on the Cornell test movies (reply tokens only),
 * - token- and word-level perplexity on WikiText-2 test (word level = exp(total NLL / words), words
 *   counted by whitespace in the detokenised text),
 * - reply statistics for greedy and beam search on a fixed set of held-out Cornell prompts: mean
 *   length in words, distinct-1/2 (unique word n-grams / all word n-grams), the share of replies that
 *   repeat a word 3-gram, the share of empty replies, and the share of replies equal to the single
 *   most frequent reply (top_reply_share: an "I don't know." for every prompt scores near 1).
 * With `split: 'valid'` the same is measured on validation data instead, for choosing a recipe
 * without touching the test sets: the Cornell valid movies and the WikiText held-out slice (see
 * data/pretrain-text.ts); the JSON keys then say `valid` and `heldout` instead of `test`.
 * Perplexities are computed on a fixed, documented prefix of each test set (`maxTokens`) so the
 * report takes a minute or two on a CPU.
 */
import type { GPT } from '../model/gpt/gpt.ts';
import { withInferenceModel } from '../model/inference/engine-choice.ts';
import { Batcher } from '../model/decode/batcher.ts';
import { chatPrompt, ReplyText } from '../model/decode/chat-reply.ts';
import { createDecoder } from '../model/decode/generate.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import type { ChatMessage, Tokenizer } from '../model/tokenizer/index.ts';
import { packedSource, sequenceSource, type BatchSource } from './batching/batches.ts';
import { cornellPaths, loadCornellDialogues } from './data/index.ts';
import { wikiTestDocuments, wikiTrainAndHeldOut } from './data/pretrain-text.ts';
import { dialogueSequences } from './batching/dialogue-sequences.ts';
import { packDocuments } from './batching/pack-documents.ts';
import { evaluate } from './train-step.ts';

interface ReplyStats {
  mean_len: number;
  distinct_1: number;
  distinct_2: number;
  repeated_3gram_share: number;
  empty_share: number;
  top_reply_share: number;
  /** The most frequent reply (the first of those tied), whose share top_reply_share is. */
  top_reply: string;
}

type EvalSplit = 'test' | 'valid';

export interface EvalReport {
  split: EvalSplit;
  cornell_reply_ppl: number;
  wikitext_token_ppl: number;
  wikitext_word_ppl: number;
  greedy: ReplyStats;
  beam_search: ReplyStats;
  /** What was measured: token counts, prompts, decoding settings. */
  details: Record<string, unknown>;
  /** A few prompt/reply pairs, for people. */
  samples: { prompt: string; greedy: string; beam_search: string }[];
}

/** The report as `npm run eval -- --json` prints it, keys named after the split measured. */
interface EvalJson extends Omit<EvalReport, 'cornell_reply_ppl' | 'wikitext_token_ppl' | 'wikitext_word_ppl'> {
  [measure: string]: unknown;
}

/** The JSON keys of the test split (the report shipped with a model). */
export interface TestEvalJson extends Omit<EvalReport, 'cornell_reply_ppl' | 'wikitext_token_ppl' | 'wikitext_word_ppl'> {
  cornell_test_reply_ppl: number;
  wikitext_test_token_ppl: number;
  wikitext_test_word_ppl: number;
}

export function evalJson(r: EvalReport): EvalJson {
  const { cornell_reply_ppl, wikitext_token_ppl, wikitext_word_ppl, ...rest } = r;
  const c = r.split === 'test' ? 'cornell_test' : 'cornell_valid';
  const w = r.split === 'test' ? 'wikitext_test' : 'wikitext_heldout';
  return { [`${c}_reply_ppl`]: cornell_reply_ppl, [`${w}_token_ppl`]: wikitext_token_ppl, [`${w}_word_ppl`]: wikitext_word_ppl, ...rest };
}

interface EvalOptions {
  split: EvalSplit;
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
  const counts = new Map<string, number>();
  for (const r of replies) {
    const key = r.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
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
    top_reply_share: replies.length ? Math.max(...counts.values()) / replies.length : 0,
    top_reply: [...counts.entries()].reduce<[string, number]>((best, e) => (e[1] > best[1] ? e : best), ['', 0])[0],
  };
}

/** Batches over a prefix of a source holding about `maxTokens` target tokens. */
function batchesFor(source: BatchSource, maxTokens: number): number {
  let tokens = 0;
  let i = 0;
  while (i < source.batchesPerEpoch && tokens < maxTokens) tokens += source.batch(0, i++).tokens;
  return i;
}

async function replies(gpt: GPT, tokenizer: Tokenizer, prompts: ChatMessage[][], options: unknown): Promise<string[]> {
  const opts = parseDecodeOptions(options);
  return withInferenceModel(gpt, (model) => {
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
  });
}

export async function evaluateCheckpoint(model: GPT, tokenizer: Tokenizer, o: EvalOptions): Promise<EvalReport> {
  const T = model.config.context;
  const B = 16;
  // 1. Cornell replies of the held-out movies.
  const { dialogues: bySplit } = await loadCornellDialogues(cornellPaths(o.corpusDir), { bothOffsets: true });
  const heldDialogues = bySplit[o.split];
  const testSeqs = heldDialogues.flatMap((d) => dialogueSequences(tokenizer, d.messages, T + 1));
  const cornell = sequenceSource(testSeqs, { batchSize: B, context: T, seed: 7, padId: tokenizer.special.pad });
  const cornellEval = await evaluate(model, cornell, batchesFor(cornell, o.maxTokens));
  // 2. WikiText-2 test, or the slice held out of pretraining.
  const docs = o.split === 'test' ? await wikiTestDocuments(o.corpusDir) : (await wikiTrainAndHeldOut(o.corpusDir)).heldOut;
  const stream = packDocuments(tokenizer, docs);
  const wiki = packedSource(stream, { batchSize: B, context: T, seed: 7 });
  const wikiBatches = batchesFor(wiki, o.maxTokens);
  const wikiEval = await evaluate(model, wiki, wikiBatches);
  // Words per token over the whole test text converts the token NLL into a per-word one.
  const wordCount = docs.reduce((a, d) => a + words(d).length, 0);
  const wordsPerToken = wordCount / stream.length;
  // 3. Replies to held-out prompts: each test dialogue's first user turn (fixed order, first N).
  const firstTurns = heldDialogues.filter((d) => d.offset === 0).slice(0, o.prompts).map((d) => [d.messages[0]]);
  const common = { max_new_tokens: o.maxNewTokens, repetition_penalty: 1.2 };
  const greedy = await replies(model, tokenizer, firstTurns, { ...common, strategy: 'greedy' });
  const beam = await replies(model, tokenizer, firstTurns, { ...common, strategy: 'beam_search', beam_width: o.beamWidth });
  return {
    split: o.split,
    cornell_reply_ppl: cornellEval.ppl,
    wikitext_token_ppl: wikiEval.ppl,
    wikitext_word_ppl: Math.exp(wikiEval.loss / wordsPerToken),
    greedy: replyStats(greedy),
    beam_search: replyStats(beam),
    details: {
      cornell_reply_tokens: cornellEval.tokens,
      wikitext_tokens: wikiEval.tokens,
      words_per_token: wordsPerToken,
      prompts: firstTurns.length,
      decoding: { ...common, beam_width: o.beamWidth },
    },
    samples: firstTurns.slice(0, 8).map((m, i) => ({ prompt: m[0].content, greedy: greedy[i], beam_search: beam[i] })),
  };
}

export function reportMarkdown(name: string, r: EvalReport): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : String(x));
  const cornell = r.split === 'test' ? 'Cornell test' : 'Cornell valid';
  const wiki = r.split === 'test' ? 'WikiText-2 test' : 'WikiText-2 held-out slice';
  const lines = [
    `| ${name} | value |`,
    '| --- | --- |',
    `| ${cornell} reply perplexity | ${f(r.cornell_reply_ppl)} |`,
    `| ${wiki} token perplexity | ${f(r.wikitext_token_ppl)} |`,
    `| ${wiki} word perplexity | ${f(r.wikitext_word_ppl)} |`,
    '',
    `| ${REPLY_COLUMNS.join(' | ')} |`,
    `|${' --- |'.repeat(REPLY_COLUMNS.length)}`,
    ...(['greedy', 'beam_search'] as const).map((k) => `| ${k} | ${replyCells(r[k])} |`),
  ];
  return lines.join('\n');
}

export const REPLY_COLUMNS = ['replies', 'mean words', 'distinct-1', 'distinct-2', 'repeated 3-gram', 'empty', 'top reply share', 'top reply'];

/** The reply statistics as markdown table cells, in REPLY_COLUMNS order. */
export function replyCells(s: ReplyStats): string {
  const f = (x: number | undefined) => (x === undefined ? 'n/a' : Number.isFinite(x) ? x.toFixed(3) : String(x));
  // Reports saved before top_reply existed have no text for it.
  const top = s.top_reply === undefined ? 'n/a' : s.top_reply.replace(/\|/g, '\\|').replace(/\n/g, ' ') || '(empty)';
  return [...[s.mean_len, s.distinct_1, s.distinct_2, s.repeated_3gram_share, s.empty_share, s.top_reply_share].map(f), top].join(' | ');
}
