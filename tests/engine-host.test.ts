import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplyEvent } from '../model/decode/chat-reply.ts';
import { parseDecodeOptions } from '../model/decode/options.ts';
import { saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { EngineBusyError, EngineHost } from '../server/engine/engine-host.ts';
import { tinyTokenizer, trainedTinyModel, untrainedTinyModel } from './helpers/tiny-model.ts';

let dir: string;
let host: EngineHost;
let modelA: string;
let modelB: string;

async function collect(events: AsyncIterable<ReplyEvent>): Promise<ReplyEvent[]> {
  const out: ReplyEvent[] = [];
  for await (const ev of events) out.push(ev);
  return out;
}

const user = (content: string) => [{ role: 'user' as const, content }];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'engine-host-'));
  const { model, tokenizer } = await trainedTinyModel();
  modelA = join(dir, 'a');
  await saveModel(modelA, { model, tokenizer });
  model.dispose();
  const other = await untrainedTinyModel({ initSeed: 9 });
  modelB = join(dir, 'b');
  await saveModel(modelB, { model: other, tokenizer: tinyTokenizer() });
  other.dispose();
  host = await EngineHost.start({ maxRows: 8, maxQueue: 2 });
  await host.load(modelA, 'v1');
});

after(async () => {
  await host.close();
  await rm(dir, { recursive: true, force: true });
});

describe('engine worker', () => {
  test('streams a reply whose deltas concatenate to done.text', async () => {
    const r = host.reply(user('The game was'), parseDecodeOptions({ max_new_tokens: 20 }));
    const events = await collect(r.events);
    assert.equal((await r.started).version, 'v1');
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    const text = events.filter((e) => e.type === 'delta').map((e) => (e as { text: string }).text).join('');
    assert.equal(done.type === 'done' && done.text, text);
  });

  test('cancelling ends the stream with finish_reason cancelled', async () => {
    const ac = new AbortController();
    const r = host.reply(user('The city of'), parseDecodeOptions({ max_new_tokens: 200, repetition_penalty: 1.2 }), ac.signal);
    const events: ReplyEvent[] = [];
    for await (const ev of r.events) {
      events.push(ev);
      if (events.length === 2) ac.abort();
    }
    const done = events.at(-1)!;
    assert.equal(done.type === 'done' && done.finishReason, 'cancelled');
    assert.equal(host.requestsInFlight, 0);
  });

  test('requests beyond rows + queue are refused as busy', async () => {
    const streams = Array.from({ length: 10 }, () => host.reply(user('A'), parseDecodeOptions({ max_new_tokens: 30 })));
    assert.throws(() => host.reply(user('B'), parseDecodeOptions({})), EngineBusyError);
    await Promise.all(streams.map((s) => collect(s.events)));
    assert.equal(host.requestsInFlight, 0);
  });

  test('a model swap drops no stream: running replies finish on the old version, new ones use the new', async () => {
    const running = host.reply(user('The game was'), parseDecodeOptions({ max_new_tokens: 60, repetition_penalty: 1.2 }));
    assert.equal((await running.started).version, 'v1');
    await host.load(modelB, 'v2');
    const fresh = host.reply(user('The game was'), parseDecodeOptions({ max_new_tokens: 5 }));
    const [oldEvents] = await Promise.all([collect(running.events), collect(fresh.events)]);
    assert.equal(oldEvents.at(-1)?.type, 'done');
    assert.equal((await fresh.started).version, 'v2');
    const stats = await host.stats();
    assert.equal(stats.activeVersion, 'v2');
    assert.deepEqual(stats.drainingVersions, []);
  });

  test('a corrupted checkpoint is refused and the active model keeps serving', async () => {
    const bad = join(dir, 'bad');
    const { model, tokenizer } = { model: await untrainedTinyModel(), tokenizer: tinyTokenizer() };
    await saveModel(bad, { model, tokenizer });
    model.dispose();
    const bytes = await readFile(join(bad, 'model.safetensors'));
    bytes[7] ^= 0xff;
    await writeFile(join(bad, 'model.safetensors'), bytes);
    await assert.rejects(host.load(bad, 'v3'), /sha256/);
    const r = host.reply(user('x'), parseDecodeOptions({ max_new_tokens: 3 }));
    await collect(r.events);
    assert.equal((await r.started).version, host.activeModel!.version);
    assert.notEqual(host.activeModel!.version, 'v3');
  });
});
