// Hugging Face interop: a tiny GPT-2 made by an independent PyTorch implementation
// (tests/fixtures/hf-gpt2-tiny/make_fixture.py) imports and matches its reference logits, greedy
// tokens and BPE encodings; export -> import round trips are identical (every tensor's sha256, the
// tokenizer, greedy and beam-search replies) for the shipped model, a random tiny one and the imported
// GPT-2; the exported tokenizer.json, read by a reference BPE that shares no code with ours, encodes
// and decodes tricky strings exactly as our tokenizer; the exported chat template, rendered by a Jinja
// engine, tokenizes to our chat template's ids; directories that are not GPT-2 are refused naming
// what differs; an imported model serves (loadModel + replies) and fine-tunes (SFT).
import { Template } from '@huggingface/jinja';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { decodeSafetensors, encodeSafetensors, readCheckpointMeta } from '../model/checkpoint/index.ts';
import { generateReply } from '../model/decode/chat-reply.ts';
import { generateToEnd } from '../model/decode/generate.ts';
import { exportHf } from '../model/hf/export.ts';
import { importHf } from '../model/hf/import.ts';
import { loadModel, saveModel } from '../model/checkpoint/gpt-checkpoint.ts';
import { renderConversation, type ChatMessage } from '../model/tokenizer/index.ts';
import { runSftStage, SftStageSchema } from '../trainer/stages/sft.ts';
import { parseFlags } from '../trainer/flags.ts';
import { ReferenceBpe } from './helpers/reference-bpe.ts';
import { tinyTokenizer, untrainedTinyModel } from './helpers/tiny-model.ts';

const FIXTURE = new URL('./fixtures/hf-gpt2-tiny', import.meta.url).pathname;
const SHIPPED = new URL('../models/default/policy', import.meta.url).pathname;
const CORPUS = new URL('./fixtures/corpora', import.meta.url).pathname;
const REPO = new URL('..', import.meta.url).pathname;

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hf-interop-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Reference {
  sequences: number[][];
  logits: number[][][];
  greedy: { prompt: number[]; tokens: number[] }[];
  encodings: { text: string; ids: number[] }[];
}
const reference = async (): Promise<Reference> => JSON.parse(await readFile(join(FIXTURE, 'reference.json'), 'utf8'));

/** sha256 of every tensor's bytes in a safetensors file, by name. */
async function tensorHashes(file: string, rename: (name: string) => string = (n) => n): Promise<Map<string, string>> {
  const { tensors } = decodeSafetensors(await readFile(file));
  return new Map(tensors.map((t) => [rename(t.name), createHash('sha256').update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex')]));
}

const MESSAGES: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello there, how are you?' },
];

async function replies(checkpoint: string): Promise<string[]> {
  const { model, tokenizer } = await loadModel(checkpoint);
  try {
    const out: string[] = [];
    for (const opts of [{ strategy: 'greedy', max_new_tokens: 12 }, { strategy: 'beam_search', beam_width: 3, max_new_tokens: 8 }]) {
      for await (const ev of generateReply(model, tokenizer, MESSAGES, opts)) if (ev.type === 'done') out.push(`${ev.finishReason}:${ev.completionTokens}:${ev.text}`);
    }
    return out;
  } finally {
    model.dispose();
  }
}

/** export -> import of `checkpoint` gives identical tensors, tokenizer, config and replies. */
async function assertRoundTrip(checkpoint: string, name: string): Promise<void> {
  const hf = join(dir, `${name}-hf`);
  const back = join(dir, `${name}-back`);
  await exportHf(checkpoint, hf);
  await importHf(hf, back);
  const before = await tensorHashes(join(checkpoint, 'model.safetensors'));
  const after = await tensorHashes(join(back, 'model.safetensors'));
  assert.equal(after.size, before.size);
  for (const [tensor, hash] of before) assert.equal(after.get(tensor), hash, `${name}: tensor ${tensor}`);
  const [m0, m1] = [await readCheckpointMeta(checkpoint), await readCheckpointMeta(back)];
  assert.equal(m1.tokenizer_hash, m0.tokenizer_hash, `${name}: tokenizer`);
  assert.deepEqual(JSON.parse(await readFile(join(back, 'tokenizer.json'), 'utf8')), JSON.parse(await readFile(join(checkpoint, 'tokenizer.json'), 'utf8')));
  const { initSeed: _a, ...c0 } = m0.config as Record<string, unknown>;
  const { initSeed: _b, ...c1 } = m1.config as Record<string, unknown>;
  assert.deepEqual(c1, c0, `${name}: config`);
  assert.deepEqual(await replies(back), await replies(checkpoint), `${name}: greedy and beam-search replies`);
}

describe('a GPT-2 made by PyTorch (make_fixture.py)', () => {
  let imported = '';
  before(async () => {
    imported = join(dir, 'fixture-imported');
    const lines: string[] = [];
    const r = await importHf(FIXTURE, imported, (l) => lines.push(l));
    assert.deepEqual(r.addedChatTokens.map((t) => t.id), [297, 298, 299, 300, 301, 302]);
    assert.match(lines.join('\n'), /added chat tokens <\|bos\|>=297 .*mean of the 297 existing rows/);
  });

  test('imports with logits within 1e-4 of the reference and its greedy tokens', async () => {
    const ref = await reference();
    const { model } = await loadModel(imported);
    try {
      let worst = 0;
      for (const [i, seq] of ref.sequences.entries()) {
        const { all, cache } = await model.prefill([seq], { allLogits: true });
        cache.dispose();
        for (const [t, row] of ref.logits[i].entries()) {
          const ours = all![0][t];
          for (let v = 0; v < row.length; v++) worst = Math.max(worst, Math.abs(ours[v] - row[v]));
        }
      }
      assert.ok(worst < 1e-4, `largest logit difference ${worst}`);
      for (const g of ref.greedy) {
        const done = await generateToEnd(model, g.prompt, { strategy: 'greedy', max_new_tokens: g.tokens.length }, { eotId: -1 });
        assert.deepEqual(done.ids, g.tokens);
      }
    } finally {
      model.dispose();
    }
  });

  test('its tokenizer encodes as the reference BPE did, from tokenizer.json and from vocab.json + merges.txt', async () => {
    const ref = await reference();
    const { tokenizer } = await loadModel(imported);
    for (const e of ref.encodings) assert.deepEqual(tokenizer.encode(e.text), e.ids, e.text);
    const legacy = join(dir, 'fixture-legacy-files');
    await cp(FIXTURE, legacy, { recursive: true });
    await rm(join(legacy, 'tokenizer.json'));
    const fromLegacy = join(dir, 'fixture-legacy-imported');
    await importHf(legacy, fromLegacy);
    assert.equal((await readCheckpointMeta(fromLegacy)).tokenizer_hash, tokenizer.hash);
    assert.equal(tokenizer.decode(tokenizer.encode('the fox')), 'the fox');
    assert.ok(tokenizer.isSpecial(296), '<|endoftext|> stays a special token');
  });

  test('export -> import round trip is identical', async () => {
    await assertRoundTrip(imported, 'fixture');
  });

  test('serves: a reply through the chat template, and SFT fine-tunes it', async () => {
    const [greedy] = await replies(imported);
    assert.match(greedy, /^(eot|length):\d+:/);
    const out = join(dir, 'fixture-sft');
    const cfg = parseFlags([`--corpus-dir=${CORPUS}`, `--init=${imported}`, `--out=${out}`, '--max-steps=2', '--batch-size=2'], SftStageSchema);
    const r = await runSftStage(cfg, new Set(), { start() {}, step() {}, event() {}, stop() {} }, () => {});
    assert.equal(r.steps, 2);
    const meta = await readCheckpointMeta(out);
    assert.equal(meta.parent, imported);
    assert.equal(meta.tokenizer_hash, (await readCheckpointMeta(imported)).tokenizer_hash);
  });
});

/** A safetensors file of raw little-endian tensors in any dtype, written here by the spec. */
function rawSafetensors(tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - ((8 + json.length) % 8)) % 8, 0x20)]);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, ...tensors.map((t) => t.bytes)]);
}

describe('weights in half precision', () => {
  test('F16, BF16 and F64 read as float32 (subnormals, infinities, NaN); a BOOL mask buffer is skipped', () => {
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x7e00);
    const bf16 = Uint16Array.of(0x3f80, 0xc040, 0x0001, 0x7f80);
    const f64 = Float64Array.of(1 / 3, -1e-300, 1e300);
    const { tensors, skipped } = decodeSafetensors(
      rawSafetensors([
        { name: 'a', dtype: 'F16', shape: [10], bytes: new Uint8Array(f16.buffer) },
        { name: 'h.0.attn.bias', dtype: 'BOOL', shape: [1, 3], bytes: Uint8Array.of(1, 0, 1) },
        { name: 'b', dtype: 'BF16', shape: [2, 2], bytes: new Uint8Array(bf16.buffer) },
        { name: 'c', dtype: 'F64', shape: [3], bytes: new Uint8Array(f64.buffer) },
      ]),
    );
    const values = (name: string) => Array.from(tensors.find((t) => t.name === name)!.data);
    const a = values('a');
    assert.deepEqual(a.slice(0, 4), [1, -2, 0.5, 65504]);
    assert.equal(a[4], 2 ** -24);
    assert.equal(a[5], 1023 * 2 ** -24);
    assert.deepEqual(a.slice(6, 8), [Infinity, -Infinity]);
    assert.ok(Object.is(a[8], -0) && Number.isNaN(a[9]));
    const b = values('b');
    assert.deepEqual([b[0], b[1], b[3]], [1, -3, Infinity]);
    assert.equal(b[2], new Float32Array(new Uint32Array([0x00010000]).buffer)[0]);
    assert.deepEqual(values('c'), Array.from(Float32Array.from(f64)));
    assert.deepEqual(skipped, [{ name: 'h.0.attn.bias', dtype: 'BOOL' }]);
  });

  test('the fixture in BF16 imports with its weights rounded to BF16', async () => {
    const d = join(dir, 'fixture-bf16');
    await cp(FIXTURE, d, { recursive: true });
    const { tensors } = decodeSafetensors(await readFile(join(d, 'model.safetensors')));
    const bf = tensors.map((t) => {
      const words = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      return { name: t.name, dtype: 'BF16', shape: t.shape, bytes: new Uint8Array(Uint16Array.from(words, (w) => w >>> 16).buffer) };
    });
    await writeFile(join(d, 'model.safetensors'), rawSafetensors(bf));
    const out = join(dir, 'fixture-bf16-imported');
    await importHf(d, out);
    const wpe = tensors.find((t) => t.name === 'wpe.weight')!;
    const { model } = await loadModel(out);
    try {
      const ours = (await model.namedWeights().get('wpe')!.data()) as Float32Array;
      const expected = new Float32Array(new Uint32Array(new Uint32Array(wpe.data.buffer, wpe.data.byteOffset, wpe.data.length).map((w) => w & 0xffff0000)).buffer);
      assert.deepEqual(Array.from(ours), Array.from(expected));
    } finally {
      model.dispose();
    }
  });
});

describe('export -> import round trips', () => {
  test('the shipped model', async () => {
    await assertRoundTrip(SHIPPED, 'shipped');
  });

  test('a random tiny model', async () => {
    const model = await untrainedTinyModel({ initSeed: 77 });
    const ck = join(dir, 'random-tiny');
    await saveModel(ck, { model, tokenizer: tinyTokenizer() });
    model.dispose();
    await assertRoundTrip(ck, 'random-tiny');
  });

  test('a reward model is not exported as a language model', async () => {
    await assert.rejects(exportHf(new URL('../models/default/reward', import.meta.url).pathname, join(dir, 'reward-hf')), /is a reward checkpoint; only a policy exports as GPT2LMHeadModel/);
  });

  test('the commands: npm run export and npm run import, exit 2 on bad usage, 1 naming what is not GPT-2', async () => {
    const run = (script: string, args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO });
    const hf = join(dir, 'cli-hf');
    const back = join(dir, 'cli-back');
    assert.equal((await run('model/cli/export-model.ts', ['--checkpoint', SHIPPED, '--format', 'hf', '--out', hf])).stdout.trim(), hf);
    const imported = await run('model/cli/import-model.ts', ['--from', hf, '--out', back]);
    assert.equal(imported.stdout.trim(), back);
    assert.match(imported.stderr, /imported 1\.3M parameters: 4 layers, d=128, 4 heads, context 128, vocabulary 4096/);
    assert.equal((await readCheckpointMeta(back)).weights.sha256, (await readCheckpointMeta(SHIPPED)).weights.sha256);
    await assert.rejects(run('model/cli/export-model.ts', ['--checkpoint', SHIPPED, '--format', 'onnx', '--out', hf]), (e: { code: number; stderr: string }) => e.code === 2 && /--format: unknown format 'onnx'/.test(e.stderr));
    await assert.rejects(run('model/cli/import-model.ts', ['--from', SHIPPED, '--out', join(dir, 'cli-bad')]), (e: { code: number; stderr: string }) => e.code === 1 && /import: .* has no config\.json/.test(e.stderr));
  });

  test('the export is GPT-2 layout: names, Conv1D (in, out) shapes, config fields, no lm_head', async () => {
    const hf = join(dir, 'shipped-hf');
    const config = JSON.parse(await readFile(join(hf, 'config.json'), 'utf8'));
    assert.deepEqual(
      { a: config.architectures, t: config.model_type, v: config.vocab_size, p: config.n_positions, e: config.n_embd, l: config.n_layer, h: config.n_head, f: config.activation_function, eps: config.layer_norm_epsilon, tie: config.tie_word_embeddings },
      { a: ['GPT2LMHeadModel'], t: 'gpt2', v: 4096, p: 128, e: 128, l: 4, h: 4, f: 'gelu_new', eps: 1e-5, tie: true },
    );
    const { tensors, metadata } = decodeSafetensors(await readFile(join(hf, 'model.safetensors')));
    assert.deepEqual(metadata, { format: 'pt' });
    const shapes = new Map(tensors.map((t) => [t.name, t.shape.join('x')]));
    assert.equal(shapes.get('transformer.wte.weight'), '4096x128');
    assert.equal(shapes.get('transformer.h.0.attn.c_attn.weight'), '128x384');
    assert.equal(shapes.get('transformer.h.3.mlp.c_fc.weight'), '128x512');
    assert.equal(shapes.get('transformer.h.3.mlp.c_proj.weight'), '512x128');
    assert.equal(shapes.get('transformer.ln_f.bias'), '128');
    assert.equal(shapes.has('lm_head.weight'), false);
    assert.equal(tensors.length, 2 + 4 * 12 + 2);
  });
});

const TRICKY = [
  'Hello, world! 👋🏽 👨‍👩‍👧‍👦 🇫🇷',
  '你好，世界。日本語のテキストと한국어',
  'lone \ud800 high, lone \udfff low, pair 😀 and \ud83d at the end \ud83d',
  'a   b\t\t\tc\n\n\n   d     ',
  '    ',
  "I'LL don't we're THEY'VE it’s",
  'x = 1234567 + 0.5e-3; ١٢٣ ①②',
  'e\u0301 vs é, \u00a0nbsp\u3000ideographic\u2028sep',
  '<|user|> hi <|eot|><|assistant|>Sure<|system|><|bos|><|pad|><|endoftext|>',
  '',
];

describe('the exported tokenizer.json, read independently, is our tokenizer', () => {
  for (const [label, source] of [
    ['our vocabulary (shipped model)', () => SHIPPED],
    ['an imported GPT-2 vocabulary', () => join(dir, 'fixture-imported')],
  ] as const) {
    test(label, async () => {
      const { model, tokenizer } = await loadModel(source());
      model.dispose();
      const hf = join(dir, `tok-${label.length}`);
      await exportHf(source(), hf);
      const ref = new ReferenceBpe(JSON.parse(await readFile(join(hf, 'tokenizer.json'), 'utf8')));
      for (const text of TRICKY) {
        const ids = tokenizer.encode(text);
        assert.deepEqual(ref.encode(text), ids, `encode ${JSON.stringify(text)}`);
        assert.ok(!ids.some((id) => tokenizer.isSpecial(id)), 'typed special-token text stays text');
        // The library decodes bytes as UTF-8; a lone surrogate has no UTF-8 form, so it is compared only where it is absent.
        if (!/[\ud800-\udfff]/u.test(text)) assert.equal(ref.decode(ids), tokenizer.decode(ids), `decode ${JSON.stringify(text)}`);
        else assert.equal(tokenizer.decode(ids), text);
      }
      // Whole conversations: our chat template vs the exported Jinja template tokenized with added tokens matched.
      const config = JSON.parse(await readFile(join(hf, 'tokenizer_config.json'), 'utf8'));
      const conversations: ChatMessage[][] = [
        MESSAGES,
        [{ role: 'user', content: TRICKY[0] }, { role: 'assistant', content: TRICKY[1] }, { role: 'user', content: TRICKY[3] }],
      ];
      for (const messages of conversations) {
        for (const addGenerationPrompt of [false, true]) {
          const text = new Template(config.chat_template).render({ messages, bos_token: config.bos_token, add_generation_prompt: addGenerationPrompt });
          assert.deepEqual(ref.encode(text, { matchAddedTokens: true }), renderConversation(tokenizer, messages, { addGenerationPrompt }).ids);
        }
      }
    });
  }
});

describe('directories that are not GPT-2 are refused naming what differs', () => {
  async function variant(name: string, edit: (d: string) => Promise<void>): Promise<string> {
    const d = join(dir, `bad-${name}`);
    await cp(FIXTURE, d, { recursive: true });
    await edit(d);
    return d;
  }
  const editJson = (file: string, f: (j: any) => void) => async (d: string) => {
    const j = JSON.parse(await readFile(join(d, file), 'utf8'));
    f(j);
    await writeFile(join(d, file), JSON.stringify(j));
  };
  const editWeights = (f: (ts: ReturnType<typeof decodeSafetensors>['tensors']) => typeof ts) => async (d: string) => {
    const { tensors } = decodeSafetensors(await readFile(join(d, 'model.safetensors')));
    await writeFile(join(d, 'model.safetensors'), encodeSafetensors(f(tensors)).bytes);
  };
  const cases: [string, (d: string) => Promise<void>, RegExp][] = [
    ['architecture', editJson('config.json', (j) => ((j.model_type = 'llama'), (j.architectures = ['LlamaForCausalLM']))), /model_type is "llama", expected "gpt2"/],
    ['activation', editJson('config.json', (j) => (j.activation_function = 'relu')), /activation_function is "relu"/],
    ['epsilon', editJson('config.json', (j) => (j.layer_norm_epsilon = 1e-6)), /layer_norm_epsilon is 0.000001/],
    ['untied', editJson('config.json', (j) => (j.tie_word_embeddings = false)), /tie_word_embeddings is false/],
    ['missing tensor', editWeights((ts) => ts.filter((t) => t.name !== 'h.1.mlp.c_fc.bias')), /model\.safetensors has no tensor 'transformer\.h\.1\.mlp\.c_fc\.bias'/],
    ['shape', editJson('config.json', (j) => (j.n_positions = 64)), /tensor 'transformer\.wpe\.weight' has shape \[32,32\], expected \[64,32\]/],
    ['extra tensor', editWeights((ts) => [...ts, { name: 'h.0.attn.q_norm.weight', dtype: 'float32', shape: [2], data: new Float32Array(2) }]), /tensors GPT-2 does not: transformer\.h\.0\.attn\.q_norm\.weight/],
    ['normalizer', editJson('tokenizer.json', (j) => (j.normalizer = { type: 'NFC' })), /has a normalizer/],
    ['sentencepiece', editJson('tokenizer.json', (j) => (j.model.byte_fallback = true)), /byte_fallback/],
    ['no weights', (d) => rm(join(d, 'model.safetensors')), /has no model\.safetensors/],
  ];
  for (const [name, edit, pattern] of cases) {
    test(name, async () => {
      const d = await variant(name, edit);
      const before = tf.memory().numTensors;
      await assert.rejects(importHf(d, join(dir, `out-${name}`)), pattern);
      assert.equal(tf.memory().numTensors, before);
      await assert.rejects(readFile(join(dir, `out-${name}`, 'meta.json')), /ENOENT/, 'nothing written');
    });
  }
});
