import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { generateReply } from '../model/decode/chat-reply.ts';
import type { GenerationEvent } from '../model/decode/decoder.ts';
import { generate, generateToEnd } from '../model/decode/generate.ts';
import { DecodeOptionsError, MAX_BEAM_WIDTH, MAX_NEW_TOKENS, parseDecodeOptions } from '../model/decode/options.ts';
import { StopStringFilter } from '../model/decode/stop-strings.ts';
import { applyRepetitionPenalty, indicesByValue, topKIndices } from '../model/decode/logits.ts';
import { nucleus, sampleToken } from '../model/decode/sample-token.ts';
import { seededRng } from '../model/decode/rng.ts';
import type { GPT } from '../model/gpt/gpt.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { FIXTURE_TEXT, trainedTinyModel, untrainedTinyModel } from './helpers/tiny-model.ts';

let model: GPT;
let tokenizer: Tokenizer;
let eot: number;
const PROMPTS = ['The game was', 'In 1990 , the', 'He was born in', 'The city of'];

function promptIds(text: string): number[] {
  return [tokenizer.special.bos, tokenizer.special.user, ...tokenizer.encode(text), tokenizer.special.eot, tokenizer.special.assistant];
}

function ctl() {
  return { eotId: eot, exempt: Object.values(tokenizer.special) };
}

/** Log-probability of `reply` (+ end-of-turn if it ended there) under the model, by full recompute. */
function sequenceLogprob(prompt: number[], reply: number[], endsWithEot: boolean): number {
  const seq = [...prompt, ...reply, ...(endsWithEot ? [eot] : [])];
  return tf.tidy(() => {
    const logp = tf.logSoftmax(model.lmLogits(model.hidden(tf.tensor2d([seq.slice(0, -1)], [1, seq.length - 1], 'int32'))));
    const rows = logp.arraySync() as number[][];
    let total = 0;
    for (let i = prompt.length - 1; i < seq.length - 1; i++) total += rows[i][seq[i + 1]];
    return total;
  });
}

before(async () => {
  ({ model, tokenizer } = await trainedTinyModel());
  eot = tokenizer.special.eot;
});
after(() => model.dispose());

describe('decoding options', () => {
  test('defaults are filled and valid options pass', () => {
    const o = parseDecodeOptions({ strategy: 'beam_search', beam_width: 5, repetition_penalty: 1.2 });
    assert.equal(o.max_new_tokens, 64);
    assert.equal(o.beam_width, 5);
  });

  test('out-of-range options are rejected naming the option and its range', () => {
    const cases: [unknown, string, RegExp][] = [
      [{ beam_width: 0 }, 'beam_width', new RegExp(`beam_width must be an integer in \\[1, ${MAX_BEAM_WIDTH}\\] \\(got 0\\)`)],
      [{ beam_width: 1000 }, 'beam_width', /beam_width must be an integer in \[1, 16\] \(got 1000\)/],
      [{ temperature: -0.5 }, 'temperature', /temperature must be in \[0, 5\]/],
      [{ top_p: 1.5 }, 'top_p', /top_p must be in \(0, 1\]/],
      [{ max_new_tokens: MAX_NEW_TOKENS + 1 }, 'max_new_tokens', /max_new_tokens must be an integer in \[1, 1024\]/],
      [{ repetition_penalty: 0 }, 'repetition_penalty', /repetition_penalty must be in \(0, 10\]/],
      [{ strategy: 'nucleus' }, 'strategy', /strategy must be one of greedy, beam_search, sample/],
      [{ top_k: 2.5 }, 'top_k', /top_k must be an integer/],
      [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4 strings/],
      [{ bogus: 1 }, 'bogus', /unknown decoding option 'bogus'/],
      [{ seed: 'x' }, 'seed', /seed must be a number/],
    ];
    for (const [input, option, message] of cases) {
      assert.throws(() => parseDecodeOptions(input), (err: unknown) => {
        assert.ok(err instanceof DecodeOptionsError, String(err));
        assert.equal(err.option, option);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  test('generate validates options too', async () => {
    await assert.rejects(generateToEnd(model, promptIds('x'), { beam_width: 1000, strategy: 'beam_search' }, ctl()), /beam_width/);
  });
});

describe('logit processing', () => {
  test('repetition penalty divides positive logits and multiplies negative ones', () => {
    const row = Float32Array.from([2, -2, 1, 0.5]);
    applyRepetitionPenalty(row, [0, 1, 1, 3], 2, new Set([3]));
    assert.deepEqual(Array.from(row), [1, -4, 1, 0.5]);
  });

  test('top-k keeps the k largest, ties by index; sampling respects top-k and top-p', () => {
    assert.deepEqual(topKIndices(Float32Array.from([0, 3, 3, 1, 5]), 3), [4, 1, 2]);
    // Against the definition (a stable sort, best first), on rows full of ties and banned tokens.
    const draw = seededRng(11);
    for (let t = 0; t < 2000; t++) {
      const n = 1 + Math.floor(draw() * 40);
      const r = Float32Array.from({ length: n }, () => (draw() < 0.1 ? -Infinity : Math.floor(draw() * 6) - 3));
      const k = 1 + Math.floor(draw() * (n + 2));
      const expected = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[b] - r[a] || a - b).slice(0, k);
      assert.deepEqual(topKIndices(r, k), expected, `row ${Array.from(r)}, k ${k}`);
    }
    const rng = seededRng(3);
    const row = Float32Array.from([0, 10, 9.9, -5, 9.8]);
    for (let i = 0; i < 200; i++) {
      assert.ok([1, 2].includes(sampleToken(row, { temperature: 1, top_k: 2, top_p: 1 }, rng)));
      assert.equal(sampleToken(row, { temperature: 1, top_k: 0, top_p: 0.3 }, rng), 1);
    }
    assert.equal(sampleToken(row, { temperature: 0, top_k: 0, top_p: 1 }, rng), 1);
  });

  test('indicesByValue is the stable sort, best first, on ties, signed zeros, infinities and whole vocabularies; NaN last', () => {
    const definition = (r: Float32Array) => Array.from({ length: r.length }, (_, i) => i).sort((a, b) => r[b] - r[a] || a - b);
    const draw = seededRng(5);
    const special = [0, -0, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, -3.4e38];
    for (let t = 0; t < 300; t++) {
      const n = t < 290 ? 1 + Math.floor(draw() * 60) : 4096 + Math.floor(draw() * 1000);
      const r = Float32Array.from({ length: n }, () => (draw() < 0.2 ? special[Math.floor(draw() * special.length)] : Math.round((draw() - 0.5) * 16) / 4));
      assert.deepEqual(indicesByValue(r), definition(r), `row ${t} of ${n}`);
      const k = 1 + Math.floor(draw() * n);
      assert.deepEqual(topKIndices(r, k), definition(r).slice(0, k), `top ${k} of row ${t}`);
    }
    assert.deepEqual(indicesByValue(Float32Array.from([NaN, 1, NaN, -Infinity, 2])), [4, 1, 3, 0, 2]);
  });

  test('nucleus: the smallest most-likely prefix holding the weight asked for, ties by lower index, zeros never', () => {
    const draw = seededRng(23);
    for (let t = 0; t < 3000; t++) {
      // Small integer weights: every sum is exact, so the boundary is the definition's exactly.
      const n = 1 + Math.floor(draw() * (t < 2900 ? 50 : 5000));
      const weights = Float64Array.from({ length: n }, () => Math.floor(draw() * 6));
      const total = weights.reduce((a, b) => a + b, 0);
      if (total === 0) continue;
      const need = Math.max(0.5, Math.floor(draw() * total * 2) / 2);
      const sorted = Array.from({ length: n }, (_, i) => i).filter((i) => weights[i] > 0).sort((a, b) => weights[b] - weights[a] || a - b);
      let cum = 0;
      const expected = sorted.filter((i) => (cum < need ? ((cum += weights[i]), true) : false));
      assert.deepEqual([...nucleus(weights, need)].sort((a, b) => a - b), expected.sort((a, b) => a - b), `row ${t}: [${Array.from(weights)}], need ${need}`);
    }
  });

  test('top-p over the whole row draws only from the nucleus, each token at its share of it', () => {
    const logits = Float32Array.from([Math.log(4), Math.log(1), Math.log(3), -Infinity, Math.log(2), Math.log(1)]);
    // Shares 4, 3, 2 of 11 reach 0.8 at the third: the nucleus is tokens 0, 2 and 4.
    const counts = new Map<number, number>();
    const rng = seededRng(29);
    const n = 30_000;
    for (let i = 0; i < n; i++) {
      const token = sampleToken(logits, { temperature: 1, top_k: 0, top_p: 0.8 }, rng);
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), [0, 2, 4]);
    for (const [token, weight] of [[0, 4], [2, 3], [4, 2]]) assert.ok(Math.abs(counts.get(token)! / n - weight / 9) < 0.012, `token ${token}: ${counts.get(token)! / n}`);
  });

  test('sampling the whole row (no top-k, no top-p) draws each token at its softmax probability', () => {
    const logits = Float32Array.from([Math.log(1), Math.log(2), -Infinity, Math.log(3), Math.log(4)]);
    for (const temperature of [1, 0.5]) {
      const weights = Array.from(logits, (l) => Math.exp(l / temperature));
      const total = weights.reduce((a, b) => a + b, 0);
      const counts = [0, 0, 0, 0, 0];
      const rng = seededRng(17);
      const n = 40_000;
      for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature, top_k: 0, top_p: 1 }, rng)]++;
      assert.equal(counts[2], 0);
      // 40,000 draws: the standard error of a share is below 0.0025; 0.01 is four of them.
      counts.forEach((c, i) => assert.ok(Math.abs(c / n - weights[i] / total) < 0.01, `token ${i} at T=${temperature}: ${c / n} vs ${weights[i] / total}`));
    }
    assert.equal(sampleToken(Float32Array.from([-Infinity, -Infinity]), { temperature: 1, top_k: 0, top_p: 1 }, seededRng(1)), 0);
  });

  test('any valid options on any row draw a token of the row with a finite logit; a vanishing top-p keeps the best token', () => {
    const draw = seededRng(31);
    const pick = <T,>(xs: T[]) => xs[Math.floor(draw() * xs.length)];
    for (let t = 0; t < 3000; t++) {
      const n = 1 + Math.floor(draw() * 300);
      // +Infinity too: a repetition penalty near 0 divides a positive logit into it.
      const row = Float32Array.from({ length: n }, () => (draw() < 0.3 ? -Infinity : pick([0, 1, -1, 1e-30, 80, -80, Infinity, (draw() - 0.5) * 20])));
      if (row.every((l) => l === -Infinity)) row[Math.floor(draw() * n)] = 0;
      const opts = {
        temperature: pick([5, 1, 0.5, 1e-3, 1e-30, Number.MIN_VALUE]),
        top_k: pick([0, 0, 1, 2, 40, 65, 1000, 65536]),
        top_p: pick([1, 1, 0.95, 0.5, 1e-10, 1e-320, Number.MIN_VALUE]),
      };
      const token = sampleToken(row, opts, draw);
      assert.ok(Number.isInteger(token) && token >= 0 && token < n && row[token] > -Infinity, `row ${t}: token ${token}, options ${JSON.stringify(opts)}`);
    }
    const row = Float32Array.from([0, 3, 3, 1, 5, -Infinity]);
    for (const top_p of [1e-10, 1e-320, Number.MIN_VALUE]) assert.equal(sampleToken(row, { temperature: 1, top_k: 0, top_p }, seededRng(2)), 4);
    assert.deepEqual([...nucleus(Float64Array.from([0.5, 2, 0, 2]), 0)], [1]);
  });
});

describe('generation', () => {
  test('beam width 1 equals greedy', async () => {
    for (const text of PROMPTS) {
      for (const repetition_penalty of [1, 1.3]) {
        const g = await generateToEnd(model, promptIds(text), { strategy: 'greedy', max_new_tokens: 24, repetition_penalty }, ctl());
        const b = await generateToEnd(model, promptIds(text), { strategy: 'beam_search', beam_width: 1, max_new_tokens: 24, repetition_penalty }, ctl());
        assert.deepEqual(b.ids, g.ids, text);
        assert.equal(b.finishReason, g.finishReason);
      }
    }
  });

  test("beam search's result has log-probability >= greedy's on the fixture prompts", async () => {
    // Fixed-length replies (no end-of-turn, no length normalisation) so the two totals are comparable.
    const fixed = { eotId: -1 };
    let strictlyBetter = 0;
    for (const text of PROMPTS) {
      const p = promptIds(text);
      const g = await generateToEnd(model, p, { strategy: 'greedy', max_new_tokens: 12 }, fixed);
      const b = await generateToEnd(model, p, { strategy: 'beam_search', beam_width: 5, length_penalty: 0, max_new_tokens: 12 }, fixed);
      const lg = sequenceLogprob(p, g.ids, false);
      const lb = sequenceLogprob(p, b.ids, false);
      // The reported logprob is the model's own (recomputed here without the cache).
      assert.ok(b.logprob !== null && Math.abs(lb - b.logprob) < 1e-3, `reported ${b.logprob} vs recomputed ${lb}`);
      assert.ok(g.logprob !== null && Math.abs(lg - g.logprob) < 1e-3, `reported ${g.logprob} vs recomputed ${lg}`);
      assert.ok(lb >= lg - 1e-6, `${text}: beam ${lb} < greedy ${lg}`);
      if (lb > lg + 1e-6) strictlyBetter++;
      // Not asked for: no log-probability, and the same reply (it is never ranked on).
      const noLp = { ...fixed, logprob: false };
      const g0 = await generateToEnd(model, p, { strategy: 'greedy', max_new_tokens: 12 }, noLp);
      const b0 = await generateToEnd(model, p, { strategy: 'beam_search', beam_width: 5, length_penalty: 0, max_new_tokens: 12 }, noLp);
      assert.deepEqual([g0.ids, g0.logprob, b0.ids, b0.logprob], [g.ids, null, b.ids, null]);
    }
    assert.ok(strictlyBetter > 0, 'beam search finds a more likely reply than greedy on at least one prompt');
  });

  test('beam search streams only a growing shared prefix that the final reply extends', async () => {
    const events: GenerationEvent[] = [];
    for await (const ev of generate(model, promptIds(PROMPTS[0]), { strategy: 'beam_search', beam_width: 4, max_new_tokens: 20 }, ctl())) events.push(ev);
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    const streamed = events.filter((e) => e.type === 'tokens').flatMap((e) => e.ids);
    assert.deepEqual(streamed, done.ids);
  });

  test('repetition penalty lowers repeats', async () => {
    const repeats = (ids: number[]) => ids.length - new Set(ids).size;
    let plain = 0;
    let penalised = 0;
    for (const text of PROMPTS) {
      plain += repeats((await generateToEnd(model, promptIds(text), { max_new_tokens: 32 }, ctl())).ids);
      penalised += repeats((await generateToEnd(model, promptIds(text), { max_new_tokens: 32, repetition_penalty: 2 }, ctl())).ids);
    }
    assert.ok(plain > 0, 'the fixture model repeats itself without a penalty');
    assert.ok(penalised < plain, `repeats: ${penalised} with penalty vs ${plain} without`);
  });

  test('no_repeat_ngram_size forbids repeated n-grams', async () => {
    for (const text of PROMPTS) {
      const p = promptIds(text);
      const r = await generateToEnd(model, p, { max_new_tokens: 40, no_repeat_ngram_size: 2 }, ctl());
      const seq = [...p, ...r.ids];
      const seen = new Set<string>();
      for (let i = 0; i + 2 <= seq.length; i++) {
        const key = `${seq[i]},${seq[i + 1]}`;
        assert.ok(!seen.has(key), `bigram ${key} repeated`);
        seen.add(key);
      }
    }
  });

  test('same seed gives the same sample; another seed usually differs', async () => {
    const opts = { strategy: 'sample', temperature: 1.2, top_k: 50, max_new_tokens: 24 };
    const a = await generateToEnd(model, promptIds(PROMPTS[1]), { ...opts, seed: 42 }, ctl());
    const b = await generateToEnd(model, promptIds(PROMPTS[1]), { ...opts, seed: 42 }, ctl());
    assert.deepEqual(a.ids, b.ids);
    assert.equal(a.seed, 42);
    const others = await Promise.all([1, 2, 3].map(async (seed) => (await generateToEnd(model, promptIds(PROMPTS[1]), { ...opts, seed }, ctl())).ids.join()));
    assert.ok(others.some((o) => o !== a.ids.join()));
  });

  test('banned ids are never generated (a reply cannot open a new turn)', async () => {
    const banned = [tokenizer.special.user, tokenizer.special.assistant, tokenizer.special.bos];
    // An untrained model echoes the last prompt token (<|assistant|>) through the tied embedding.
    const fresh = await untrainedTinyModel();
    try {
      const free = await generateToEnd(fresh, promptIds('hi'), { max_new_tokens: 8 }, { eotId: eot });
      assert.ok(free.ids.some((id) => banned.includes(id)), 'the untrained model does emit role tokens');
      for (const strategy of ['greedy', 'beam_search', 'sample']) {
        const r = await generateToEnd(fresh, promptIds('hi'), { strategy, max_new_tokens: 8, seed: 1 }, { eotId: eot, banned });
        assert.ok(!r.ids.some((id) => banned.includes(id)), `${strategy}: ${r.ids}`);
      }
    } finally {
      fresh.dispose();
    }
  });

  test('generation past the context window slides instead of failing', async () => {
    const r = await generateToEnd(model, promptIds(PROMPTS[2]), { max_new_tokens: 3 * model.config.context, no_repeat_ngram_size: 0 }, { eotId: -1 });
    assert.equal(r.ids.length, 3 * model.config.context);
    assert.equal(r.finishReason, 'length');
  });

  test('a long prompt is cropped from the left, never an index out of range', async () => {
    const context = model.config.context;
    // Real text, so that what follows its start and what follows its end differ.
    const long = tokenizer.encode(FIXTURE_TEXT.slice(0, 8000)).slice(0, 5 * context);
    assert.equal(long.length, 5 * context);
    // No end-of-turn id, so the reply runs to max_new_tokens: 8 new tokens leave room for the last context - 8.
    const r = await generateToEnd(model, long, { max_new_tokens: 8 }, { eotId: -1 });
    assert.equal(r.finishReason, 'length');
    assert.equal(r.ids.length, 8);
    const suffix = await generateToEnd(model, long.slice(-(context - 8)), { max_new_tokens: 8 }, { eotId: -1 });
    assert.deepEqual(r.ids, suffix.ids, 'the long prompt decodes as its most recent context - 8 tokens');
    const head = await generateToEnd(model, long.slice(0, context - 8), { max_new_tokens: 8 }, { eotId: -1 });
    assert.notDeepEqual(r.ids, head.ids, 'the oldest tokens were dropped, not the newest');
  });

  test('aborting ends the generation with finishReason cancelled', async () => {
    const ac = new AbortController();
    const events: GenerationEvent[] = [];
    for await (const ev of generate(model, promptIds(PROMPTS[0]), { max_new_tokens: 50 }, { eotId: -1, signal: ac.signal })) {
      events.push(ev);
      if (events.length === 3) ac.abort();
    }
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    assert.equal(done.type === 'done' && done.finishReason, 'cancelled');
    assert.equal(done.type === 'done' && done.ids.length, 3);
  });

  test('tf.memory().numTensors stays flat over 100 generations (greedy, sample, beam, abandoned)', async () => {
    await generateToEnd(model, promptIds('warm'), { max_new_tokens: 4 }, ctl());
    const start = tf.memory().numTensors;
    const strategies = [{ strategy: 'greedy' }, { strategy: 'sample', seed: 1 }, { strategy: 'beam_search', beam_width: 3 }];
    for (let i = 0; i < 100; i++) {
      const opts = { ...strategies[i % 3], max_new_tokens: 6 };
      if (i % 10 === 9) {
        // A consumer that stops iterating early (client went away).
        for await (const ev of generate(model, promptIds(PROMPTS[i % 4]), opts, ctl())) if (ev.type === 'tokens') break;
      } else {
        await generateToEnd(model, promptIds(PROMPTS[i % 4]), opts, ctl());
      }
    }
    assert.equal(tf.memory().numTensors, start);
  });
});

describe('chat replies', () => {
  test('text deltas concatenate to the final text and decode the generated ids', async () => {
    let text = '';
    let done;
    for await (const ev of generateReply(model, tokenizer, [{ role: 'user', content: 'The game was' }], { max_new_tokens: 30 })) {
      if (ev.type === 'delta') text += ev.text;
      else done = ev;
    }
    assert.ok(done);
    assert.equal(done.text, text);
    assert.ok(!text.includes('\uFFFD'));
    assert.ok(done.completionTokens <= 30);
  });

  test('a stop string ends the reply and is not shown', async () => {
    const full = [];
    for await (const ev of generateReply(model, tokenizer, [{ role: 'user', content: 'The game was' }], { max_new_tokens: 40 })) if (ev.type === 'done') full.push(ev.text);
    const text = full[0];
    assert.ok(text.length > 6, `reply too short for the test: ${JSON.stringify(text)}`);
    const stop = text.slice(4, 6);
    let shown = '';
    let finish;
    for await (const ev of generateReply(model, tokenizer, [{ role: 'user', content: 'The game was' }], { max_new_tokens: 40, stop: [stop] })) {
      if (ev.type === 'delta') shown += ev.text;
      else finish = ev;
    }
    assert.equal(shown, text.slice(0, text.indexOf(stop)));
    assert.equal(finish?.finishReason, 'stop');
  });

  test('the stop filter never releases part of a stop string', () => {
    const f = new StopStringFilter(['END']);
    assert.equal(f.push('abc E'), 'abc ');
    assert.equal(f.push('N'), '');
    assert.equal(f.push('X'), 'ENX');
    assert.equal(f.push('..EN'), '..');
    assert.equal(f.push('D!'), '');
    assert.ok(f.hasStopped);
  });
});
