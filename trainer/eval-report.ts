/**
 * `tsx trainer/eval-report.ts --pretrain P.json --sft S.json [--distill D.json] [--reward R.json]`:
 * the markdown report shipped beside the default models: the checkpoints of each stage compared on
 * the test split, sample replies of the last one (the shipped policy), and (when given) the reward
 * model's held-out accuracy per source.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { REPLY_COLUMNS, replyCells, type TestEvalJson } from './evaluation.ts';

type Saved = TestEvalJson & { checkpoint: string; step: number; seconds: number };

const { values: paths } = parseArgs({ options: { pretrain: { type: 'string' }, sft: { type: 'string' }, distill: { type: 'string' }, reward: { type: 'string' } } });
if (!paths.pretrain || !paths.sft) {
  process.stderr.write('usage: tsx trainer/eval-report.ts --pretrain P.json --sft S.json [--distill D.json] [--reward R.json]\n');
  process.exit(2);
}
const rewardPath = paths.reward;
const read = (p: string): Saved => JSON.parse(readFileSync(p, 'utf8')) as Saved;
const stages: { name: string; label: string; r: Saved }[] = [
  { name: 'pretrained', label: 'pretrained only', r: read(paths.pretrain) },
  { name: 'SFT', label: 'after SFT', r: read(paths.sft) },
  ...(paths.distill ? [{ name: 'distilled', label: 'after distillation (shipped)', r: read(paths.distill) }] : []),
];
const shipped = stages.at(-1)!;
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
if (stages.some(({ r }) => r.split !== undefined && r.split !== 'test')) {
  process.stderr.write('eval-report: every report must be of the test split (npm run eval without --split)\n');
  process.exit(2);
}
const row = (metric: string, pick: (r: Saved) => number) => `| ${metric} | ${stages.map(({ r }) => f(pick(r))).join(' | ')} |`;
const d = shipped.r.details;

const out = [
  '# Evaluation of the default model',
  '',
  `${stages.map(({ name, r }) => `${name} checkpoint: step ${r.step}`).join('; ')}. Produced by \`npm run eval\`.`,
  `Perplexities use the first ${d.cornell_reply_tokens ?? d.cornell_test_reply_tokens} reply tokens of the Cornell test movies and the first ${d.wikitext_tokens ?? d.wikitext_test_tokens} tokens of WikiText-2 test;`,
  `replies answer the first user turn of ${d.prompts} held-out Cornell dialogues (${JSON.stringify(d.decoding)}).`,
  '',
  `| metric | ${stages.map((s) => s.label).join(' | ')} |`,
  `|${' --- |'.repeat(stages.length + 1)}`,
  row('Cornell test reply perplexity', (r) => r.cornell_test_reply_ppl),
  row('WikiText-2 test token perplexity', (r) => r.wikitext_test_token_ppl),
  row('WikiText-2 test word perplexity', (r) => r.wikitext_test_word_ppl),
  '',
  `| ${REPLY_COLUMNS.join(' | ')} |`,
  `|${' --- |'.repeat(REPLY_COLUMNS.length)}`,
  ...stages.flatMap(({ name, r }) => [`| ${name}, greedy | ${replyCells(r.greedy)} |`, `| ${name}, beam search | ${replyCells(r.beam_search)} |`]),
  '',
  `## Sample replies of the ${shipped.name} model to held-out prompts`,
  '',
  '| prompt | greedy | beam search |',
  '| --- | --- | --- |',
  ...shipped.r.samples.map((s) => `| ${cell(s.prompt)} | ${cell(s.greedy)} | ${cell(s.beam_search)} |`),
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
