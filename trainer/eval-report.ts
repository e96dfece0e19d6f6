/**
 * `tsx trainer/eval-report.ts pretrain.json sft.json [reward.json]`: the markdown report shipped beside
 * the default models: the pretrained-only and the fine-tuned checkpoints compared, sample replies, and
 * (when given) the reward model's held-out accuracy per source.
 */
import { readFileSync } from 'node:fs';
import { REPLY_COLUMNS, replyCells, type TestEvalJson } from './evaluation.ts';

type Saved = TestEvalJson & { checkpoint: string; step: number; seconds: number };

const [pretrainPath, sftPath, rewardPath] = process.argv.slice(2);
if (!pretrainPath || !sftPath) {
  process.stderr.write('usage: tsx trainer/eval-report.ts PRETRAIN.json SFT.json\n');
  process.exit(2);
}
const read = (p: string): Saved => JSON.parse(readFileSync(p, 'utf8')) as Saved;
const pre = read(pretrainPath);
const sft = read(sftPath);
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
const stats = (r: Saved, k: 'greedy' | 'beam_search') => replyCells(r[k]);
if ([pre, sft].some((r) => r.split !== undefined && r.split !== 'test')) {
  process.stderr.write('eval-report: both reports must be of the test split (npm run eval without --split)\n');
  process.exit(2);
}

const out = [
  '# Evaluation of the default model',
  '',
  `Pretrained checkpoint: step ${pre.step}; SFT checkpoint: step ${sft.step}. Produced by \`npm run eval\`.`,
  `Perplexities use the first ${sft.details.cornell_reply_tokens ?? sft.details.cornell_test_reply_tokens} reply tokens of the Cornell test movies and the first ${sft.details.wikitext_tokens ?? sft.details.wikitext_test_tokens} tokens of WikiText-2 test;`,
  `replies answer the first user turn of ${sft.details.prompts} held-out Cornell dialogues (${JSON.stringify(sft.details.decoding)}).`,
  '',
  '| metric | pretrained only | after SFT |',
  '| --- | --- | --- |',
  `| Cornell test reply perplexity | ${f(pre.cornell_test_reply_ppl)} | ${f(sft.cornell_test_reply_ppl)} |`,
  `| WikiText-2 test token perplexity | ${f(pre.wikitext_test_token_ppl)} | ${f(sft.wikitext_test_token_ppl)} |`,
  `| WikiText-2 test word perplexity | ${f(pre.wikitext_test_word_ppl)} | ${f(sft.wikitext_test_word_ppl)} |`,
  '',
  `| ${REPLY_COLUMNS.join(' | ')} |`,
  `|${' --- |'.repeat(REPLY_COLUMNS.length)}`,
  `| pretrained, greedy | ${stats(pre, 'greedy')} |`,
  `| pretrained, beam search | ${stats(pre, 'beam_search')} |`,
  `| SFT, greedy | ${stats(sft, 'greedy')} |`,
  `| SFT, beam search | ${stats(sft, 'beam_search')} |`,
  '',
  '## Sample replies of the SFT model to held-out prompts',
  '',
  '| prompt | greedy | beam search |',
  '| --- | --- | --- |',
  ...sft.samples.map((s) => `| ${cell(s.prompt)} | ${cell(s.greedy)} | ${cell(s.beam_search)} |`),
  '',
];
if (rewardPath) {
  type Held = Record<string, { accuracy: number; margin: number; pairs: number }>;
  const rm = JSON.parse(readFileSync(rewardPath, 'utf8')) as {
    steps: number;
    eval: Held;
    eval_by_kind?: Held;
    relevance_weight?: number;
    eval_head_only?: Held;
    eval_by_kind_head_only?: Held;
    reward_mean: number;
    reward_std: number;
  };
  const withRelevance = (rm.relevance_weight ?? 0) > 0 && rm.eval_head_only !== undefined;
  const rows = { ...rm.eval, ...rm.eval_by_kind };
  const headOnly: Held = { ...rm.eval_head_only, ...rm.eval_by_kind_head_only };
  const pct = (x: number | undefined) => (x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);
  out.push(
    '## Reward model',
    '',
    `Trained for ${rm.steps} steps on bootstrap pairs from the Cornell training split; reward mean ${f(rm.reward_mean)}, std ${f(rm.reward_std)} over its training replies.`,
    ...(withRelevance
      ? ['', `Its score is the scalar head's plus ${rm.relevance_weight} x the reply's relevance to the prompt under the SFT policy (mean per-token log-likelihood gain over an empty prompt), the weight fitted on training pairs; "head alone" is the score without it.`]
      : []),
    '',
    withRelevance ? '| held-out pairs | pairs | accuracy | mean margin | head alone |' : '| held-out pairs | pairs | accuracy | mean margin |',
    withRelevance ? '| --- | --- | --- | --- | --- |' : '| --- | --- | --- | --- |',
    ...Object.entries(rows).map(([source, e]) => `| ${source} | ${e.pairs} | ${pct(e.accuracy)} | ${f(e.margin)} |${withRelevance ? ` ${pct(headOnly[source]?.accuracy)} |` : ''}`),
    '',
    ...(rm.eval_by_kind
      ? ['The bootstrap rows by rejected reply: another conversation\'s reply (`other`, the one that needs the prompt), a word repeated, an empty reply, the reply cut short.', '']
      : []),
  );
}
process.stdout.write(out.join('\n'));

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ') || '(empty)';
}
