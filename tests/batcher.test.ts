import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { Batcher } from '../model/decode/batcher.ts';
import type { GenerationEvent } from '../model/decode/decoder.ts';
import { createDecoder, generate } from '../model/decode/generate.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import type { GPT } from '../model/gpt/gpt.ts';
import type { InferenceModel } from '../model/inference/inference-model.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { trainedTinyModel } from './helpers/tiny-model.ts';

let model: GPT;
let tokenizer: Tokenizer;

before(async () => {
  ({ model, tokenizer } = await trainedTinyModel());
});
after(() => model.dispose());

function prompt(text: string): number[] {
  const s = tokenizer.special;
  return [s.bos, s.user, ...tokenizer.encode(text), s.eot, s.assistant];
}

const REQUESTS: [string, Record<string, unknown>][] = [
  ['The game was', { strategy: 'greedy', max_new_tokens: 20 }],
  ['In 1990 , the', { strategy: 'beam_search', beam_width: 3, max_new_tokens: 16 }],
  ['He was born in', { strategy: 'sample', seed: 5, temperature: 0.9, max_new_tokens: 24 }],
  ['The city of', { strategy: 'greedy', max_new_tokens: 90, repetition_penalty: 1.3 }],
  ['A', { strategy: 'beam_search', beam_width: 2, max_new_tokens: 10, length_penalty: 0.5 }],
];

async function solo(text: string, options: Record<string, unknown>): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const ev of generate(model, prompt(text), options, { eotId: tokenizer.special.eot })) events.push(ev);
  return events;
}

/** Events with the float log-probability rounded: batched and solo forwards differ in the last bits. */
function comparable(events: GenerationEvent[]) {
  return events.map((e) => (e.type === 'done' && e.logprob !== null ? { ...e, logprob: Math.round(e.logprob * 1e3) / 1e3 } : e));
}

/** `eotId: -1` makes a reply that only ends at max_new_tokens (or when cancelled). */
function submit(batcher: Batcher, text: string, options: Record<string, unknown>, signal?: AbortSignal, group?: string, eotId = tokenizer.special.eot) {
  const events: GenerationEvent[] = [];
  const p = prompt(text);
  const decoder = createDecoder(p, parseDecodeOptions(options), { eotId });
  const done = batcher.run({ prompt: p, decoder, onEvents: (evs) => events.push(...evs), signal, group });
  return { events, done };
}

describe('continuous batching', () => {
  test('requests sharing one batch produce exactly what each produces alone', async () => {
    const expected: GenerationEvent[][] = [];
    for (const [text, opts] of REQUESTS) expected.push(await solo(text, opts));
    const batcher = new Batcher(model, 16);
    // Staggered arrivals: some join while others are mid-reply.
    const runs = [];
    for (let i = 0; i < REQUESTS.length; i++) {
      runs.push(submit(batcher, ...REQUESTS[i]));
      await new Promise((r) => setTimeout(r, 5 * i));
    }
    await Promise.all(runs.map((r) => r.done));
    runs.forEach((r, i) => assert.deepEqual(comparable(r.events), comparable(expected[i]), `request ${i}`));
    assert.ok(batcher.stats().steps < expected.reduce((a, e) => a + e.length, 0), 'steps were shared');
  });

  test('requests over the row limit wait in the queue and still complete', async () => {
    const batcher = new Batcher(model, 3);
    const runs = REQUESTS.slice(0, 4).map(([t, o]) => submit(batcher, t, o));
    assert.ok(batcher.stats().queued > 0);
    await Promise.all(runs.map((r) => r.done));
    for (const r of runs) assert.equal(r.events.at(-1)?.type, 'done');
    await assert.rejects(submit(batcher, 'x', { strategy: 'beam_search', beam_width: 4 }).done, /needs 4 rows; the batch holds 3/);
  });

  test('free rows go to the group holding the fewest: one request of a second group overtakes a crowd queued before it', async () => {
    const batcher = new Batcher(model, 2);
    const started: string[] = [];
    const run = (name: string, group: string) => {
      const p = prompt('The game was');
      const decoder = createDecoder(p, parseDecodeOptions({ max_new_tokens: 12 }), { eotId: tokenizer.special.eot });
      let first = true;
      return batcher.run({ prompt: p, decoder, group, onEvents: () => first && ((first = false), started.push(name)) });
    };
    const runs = [0, 1, 2, 3, 4, 5].map((i) => run(`crowd${i}`, 'crowd'));
    runs.push(run('other', 'other'));
    await Promise.all(runs);
    assert.equal(started.length, 7);
    // First come, first served would start it last (7th); in turn, it takes the first row the crowd frees.
    assert.ok(started.indexOf('other') <= 2, started.join(' '));
  });

  test('a cancelled request ends with cancelled and the others are unaffected', async () => {
    const expected = await solo(...REQUESTS[0]);
    const batcher = new Batcher(model, 8);
    const ac = new AbortController();
    const victim = submit(batcher, 'The city of', { max_new_tokens: 60 }, ac.signal);
    const other = submit(batcher, ...REQUESTS[0]);
    setTimeout(() => ac.abort(), 20);
    await Promise.all([victim.done, other.done]);
    const last = victim.events.at(-1);
    assert.equal(last?.type === 'done' && last.finishReason, 'cancelled');
    assert.deepEqual(comparable(other.events), comparable(expected));
  });

  test('tf.memory().numTensors returns to its start after batches drain', async () => {
    const batcher = new Batcher(model, 8);
    await submit(batcher, 'warm', { max_new_tokens: 3 }).done;
    const start = tf.memory().numTensors;
    for (let round = 0; round < 5; round++) {
      const runs = REQUESTS.map(([t, o]) => submit(batcher, t, { ...o, max_new_tokens: 12 }));
      await Promise.all(runs.map((r) => r.done));
    }
    assert.equal(tf.memory().numTensors, start);
    assert.equal(batcher.stats().liveRows, 0);
  });

  /** The real model, except that its `failAt`-th prefill call throws (an engine fault). */
  function failingPrefill(failAt: number): InferenceModel {
    let calls = 0;
    const inner: InferenceModel = model;
    return {
      config: inner.config,
      prefill: (prompts, opts) => (++calls === failAt ? Promise.reject(new Error('injected prefill fault')) : inner.prefill(prompts, opts)),
      step: (cache, tokens) => inner.step(cache, tokens),
      concatRows: (caches) => inner.concatRows(caches),
      dispose: () => {},
    };
  }

  /** Settles like `p`, or rejects naming `what` if `p` has not settled after 60 s (a hang). */
  function settles<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} never settled`)), 60_000);
    });
    return Promise.race([p, hang]).finally(() => clearTimeout(timer));
  }

  test('a prefill failing while a request joins rejects the running and the joining request, and the batcher serves on', async () => {
    const batcher = new Batcher(failingPrefill(2), 8);
    const running = submit(batcher, 'The game was', { strategy: 'greedy', max_new_tokens: 40 }, undefined, undefined, -1);
    // Joins at a step boundary: its admission is the second prefill, which fails.
    while (running.events.length === 0) await new Promise((r) => setTimeout(r, 1));
    const joining = submit(batcher, 'He was born in', { strategy: 'greedy', max_new_tokens: 5 });
    await assert.rejects(settles(joining.done, 'the joining request'), /injected prefill fault/);
    await assert.rejects(settles(running.done, 'the running request'), /injected prefill fault/);
    assert.deepEqual(batcher.stats(), { ...batcher.stats(), liveRows: 0, liveRequests: 0, queued: 0 });
    const again = submit(batcher, ...REQUESTS[0]);
    await settles(again.done, 'a later request');
    assert.deepEqual(comparable(again.events), comparable(await solo(...REQUESTS[0])));
  });

  test('a prefill failing while a full window is rebuilt rejects that request instead of leaving it waiting', async () => {
    const batcher = new Batcher(failingPrefill(2), 8);
    // Longer than the window: its rows are rebuilt once they reach the context (the second prefill).
    const long = submit(batcher, 'The city of', { strategy: 'greedy', max_new_tokens: model.config.context + 8 }, undefined, undefined, -1);
    await assert.rejects(settles(long.done, 'the rebuilt request'), /injected prefill fault/);
    assert.equal(batcher.stats().liveRequests, 0);
  });
});
