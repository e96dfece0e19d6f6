// The distill stage's target decoder (trainer/distill/mmi-replies.ts) on the tiny trained model, and
// its saved targets.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { generateToEnd } from '../model/decode/generate.ts';
import { logSoftmax } from '../model/decode/logits.ts';
import type { GPT } from '../model/gpt/gpt.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { mmiReplies } from '../trainer/distill/mmi-replies.ts';
import { keepTargets, loadTargets, openingOf } from '../trainer/stages/distill.ts';
import { emptyPromptIds } from '../trainer/reward/relevance.ts';
import { trainedTinyModel } from './helpers/tiny-model.ts';

const TEXTS = ['the game was released', 'in the first season', 'he was born in', 'the album', 'it is a'];

describe('maximum-mutual-information replies', () => {
  let model: GPT;
  let tokenizer: Tokenizer;
  let prompts: number[][];
  let control: { eotId: number; banned: number[]; exempt: Set<number> };
  before(async () => {
    ({ model, tokenizer } = await trainedTinyModel());
    const s = tokenizer.special;
    prompts = TEXTS.map((t) => [s.bos, s.user, ...tokenizer.encode(t), s.eot, s.assistant]);
    control = { eotId: s.eot, banned: [s.user, s.assistant, s.bos], exempt: new Set(Object.values(s)) };
  });
  after(() => model?.dispose());

  test('with lambda 0 and no repetition penalty they are the greedy replies, batched or one at a time', async () => {
    const opts = { lambda: 0, antiLmTokens: 8, plausibility: 0, repetitionPenalty: 1, maxNewTokens: 12 };
    const batched = await mmiReplies(model, prompts, emptyPromptIds(tokenizer), control, { ...opts, batchSize: 3 });
    assert.equal(batched.length, prompts.length);
    for (let i = 0; i < prompts.length; i++) {
      const greedy = await generateToEnd(model, prompts[i], { strategy: 'greedy', max_new_tokens: 12 }, { eotId: control.eotId, banned: control.banned, exempt: control.exempt });
      assert.deepEqual(batched[i].ids, greedy.ids, `prompt ${i}`);
      assert.equal(batched[i].ended, greedy.finishReason === 'eot');
    }
  });

  test('the first token maximises log p(t | prompt) - lambda log p(t | empty prompt); the anti-LM term changes replies', async () => {
    const lambda = 0.8;
    const [one] = await mmiReplies(model, [prompts[0]], emptyPromptIds(tokenizer), control, { lambda, antiLmTokens: 4, plausibility: 0, repetitionPenalty: 1, maxNewTokens: 1, batchSize: 1 });
    const given = await model.prefill([prompts[0]]);
    const alone = await model.prefill([emptyPromptIds(tokenizer)]);
    given.cache.dispose();
    alone.cache.dispose();
    const a = logSoftmax(Float32Array.from(given.logits[0], (v, id) => (control.banned.includes(id) ? -Infinity : v)));
    const b = logSoftmax(alone.logits[0]);
    let best = 0;
    const score = (v: number) => (v === control.eotId ? a[v] : a[v] - lambda * b[v]);
    for (let v = 1; v < a.length; v++) if (score(v) > score(best)) best = v;
    assert.deepEqual(one.ids, best === control.eotId ? [] : [best]);

    const greedy = await mmiReplies(model, prompts, emptyPromptIds(tokenizer), control, { lambda: 0, antiLmTokens: 4, plausibility: 0, repetitionPenalty: 1.2, maxNewTokens: 10, batchSize: 8 });
    const mmi = await mmiReplies(model, prompts, emptyPromptIds(tokenizer), control, { lambda, antiLmTokens: 4, plausibility: 0, repetitionPenalty: 1.2, maxNewTokens: 10, batchSize: 8 });
    assert.ok(mmi.some((r, i) => r.ids.join() !== greedy[i].ids.join()), 'lambda 0.8 gave the greedy replies for every prompt');
    for (const r of mmi) assert.ok(r.ids.every((id) => !control.banned.includes(id)), 'a banned id was chosen');
  });

  test('with a plausibility share, every anti-LM choice is at least that share as probable as the best token', async () => {
    const plausibility = 0.3;
    const [r] = await mmiReplies(model, [prompts[1]], emptyPromptIds(tokenizer), control, { lambda: 2, antiLmTokens: 1, plausibility, repetitionPenalty: 1, maxNewTokens: 1, batchSize: 1 });
    const given = await model.prefill([prompts[1]]);
    given.cache.dispose();
    const a = logSoftmax(Float32Array.from(given.logits[0], (v, id) => (control.banned.includes(id) ? -Infinity : v)));
    const chosen = r.ids[0] ?? control.eotId;
    assert.ok(a[chosen] >= Math.max(...a) + Math.log(plausibility) - 1e-9, `token ${chosen} has log p ${a[chosen]} against the best ${Math.max(...a)}`);
    const [free] = await mmiReplies(model, [prompts[1]], emptyPromptIds(tokenizer), control, { lambda: 2, antiLmTokens: 1, plausibility: 0, repetitionPenalty: 1, maxNewTokens: 1, batchSize: 1 });
    const freeChosen = free.ids[0] ?? control.eotId;
    assert.ok(a[freeChosen] < Math.max(...a) + Math.log(plausibility), 'without the constraint lambda 2 should pick an implausible token on this prompt');
  });

  test('repeated calls leave no tensors behind', async () => {
    const run = () => mmiReplies(model, prompts, emptyPromptIds(tokenizer), control, { lambda: 0.7, antiLmTokens: 6, plausibility: 0.1, repetitionPenalty: 1.2, maxNewTokens: 8, batchSize: 2 });
    await run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await run();
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('the distill stage\'s saved targets', () => {
  test('reused only when made with the same settings; an unreadable file is decoded again, with a line saying why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'targets-'));
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    try {
      const path = join(dir, 'distill.targets.jsonl');
      const settings = { lambda: 1, prompts: 2 };
      assert.equal(await loadTargets(path, settings, log), null);
      const targets = [{ prompt: 'who?', reply: 'me.', score: 1.5 }, { prompt: 'why?', reply: 'because.', score: 0.5 }];
      await writeFile(path, [JSON.stringify({ settings }), ...targets.map((t) => JSON.stringify(t))].join('\n') + '\n');
      assert.deepEqual(await loadTargets(path, settings, log), targets);
      assert.equal(await loadTargets(path, { ...settings, lambda: 0.5 }, log), null);
      assert.match(lines.at(-1)!, /made with other settings; decoding the targets again/);
      await writeFile(path, `${JSON.stringify({ settings })}\n{"prompt": "who?", "reply": 3}\n`);
      assert.equal(await loadTargets(path, settings, log), null);
      assert.match(lines.at(-1)!, /distill\.targets\.jsonl is unreadable \(line 2 is not a target\); decoding the targets again/);
      await writeFile(path, '{not json');
      assert.equal(await loadTargets(path, settings, log), null);
      assert.match(lines.at(-1)!, /is unreadable \(.*JSON.*\); decoding the targets again/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('keeps the best ranked targets, at most maxSame of them opening with the same two words', () => {
    assert.equal(openingOf('  But   IF you don\'t?'), 'but if');
    assert.equal(openingOf('No.'), 'no.');
    const t = (reply: string, score: number) => ({ prompt: 'p', reply, score });
    const ranked = [t('But if you do?', 5), t('But if not?', 4), t('but if so.', 3), t('Yes.', 2), t('No way.', 1), t('Maybe.', 0)];
    assert.deepEqual(keepTargets(ranked, 4, 2).map((x) => x.reply), ['But if you do?', 'But if not?', 'Yes.', 'No way.']);
    assert.deepEqual(keepTargets(ranked, 4, 100).map((x) => x.reply), ['But if you do?', 'But if not?', 'but if so.', 'Yes.']);
    // Fewer allowed than asked for: all that the cap lets through.
    assert.deepEqual(keepTargets(ranked, 10, 1).map((x) => x.reply), ['But if you do?', 'Yes.', 'No way.', 'Maybe.']);
  });
});
