import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import {
  CheckpointError,
  checkpointHasResume,
  checkpointWeightsSha256,
  loadCheckpoint,
  readCheckpointMeta,
  saveCheckpoint,
  sha256File,
  type SaveCheckpointInput,
} from '../model/checkpoint/index.ts';
import { writeDirAtomically, writeFileDurable } from '../model/checkpoint/atomic-dir.ts';
import { migrateCheckpoint } from '../model/checkpoint/migrate.ts';
import { packTensors, unpackTensors } from '../model/checkpoint/tensor-file.ts';
import { createHash } from 'node:crypto';

let root = '';
let counter = 0;
const freshDir = (): string => join(root, `ck-${++counter}`);

before(async () => {
  assert.equal(await tf.setBackend('wasm'), true, 'wasm backend must initialise');
  await tf.ready();
  root = await mkdtemp(join(tmpdir(), 'checkpoint-test-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Float32 values given by bit pattern: NaNs (with payloads), ±0, denormals, extremes, infinities. */
const SPECIAL_F32_BITS = [
  0x7fc00000, // NaN
  0xffc00000, // -NaN
  0x7fc12345, // NaN with payload
  0x7f800001, // signalling NaN
  0x00000000, // +0
  0x80000000, // -0
  0x00000001, // smallest denormal
  0x807fffff, // largest negative denormal
  0x00400000, // mid denormal
  0x00800000, // smallest normal
  0x7f7fffff, // FLT_MAX
  0xff7fffff, // -FLT_MAX
  0x7f800000, // +Inf
  0xff800000, // -Inf
  0x3f800000, // 1
  0x40490fdb, // pi
];
const INT32_VALUES = [-2147483648, 2147483647, 0, -1, 1, 123456789, -987654321, 42];

function f32FromBits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function bitsOf(a: Float32Array | Int32Array | Uint8Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.byteLength / 4));
}

/** A deterministic set of named arrays (kept as plain data so every test can compare bits). */
function sampleArrays(seed = 1): Array<{ name: string; shape: number[]; dtype: 'float32' | 'int32'; values: Float32Array | Int32Array }> {
  const rand = new Float32Array(3 * 4);
  let s = seed;
  for (let i = 0; i < rand.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    rand[i] = (s / 2147483648 - 0.5) * 2;
  }
  return [
    { name: 'wte', shape: [3, 4], dtype: 'float32', values: rand },
    { name: 'special', shape: [4, 4], dtype: 'float32', values: f32FromBits(SPECIAL_F32_BITS) },
    { name: 'ints', shape: [2, 2, 2], dtype: 'int32', values: new Int32Array(INT32_VALUES) },
    { name: 'scalar', shape: [], dtype: 'float32', values: new Float32Array([seed + 0.5]) },
    { name: 'empty', shape: [0, 3], dtype: 'float32', values: new Float32Array(0) },
  ];
}

function makeTensors(arrays = sampleArrays()): Array<{ name: string; tensor: tf.Tensor }> {
  return arrays.map((a) => ({ name: a.name, tensor: tf.tensor(a.values.slice(), a.shape, a.dtype) }));
}

function disposeAll(list: Array<{ tensor: tf.Tensor }> | Map<string, tf.Tensor>): void {
  if (list instanceof Map) for (const t of list.values()) t.dispose();
  else for (const { tensor } of list) tensor.dispose();
}

const expectedNames = (): Record<string, number[]> =>
  Object.fromEntries(sampleArrays().map((a) => [a.name, a.shape]));

function baseInput(weights: SaveCheckpointInput['weights'], over: Partial<SaveCheckpointInput> = {}): SaveCheckpointInput {
  return {
    kind: 'policy',
    config: { vocabSize: 512, nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 128, nested: { a: [1, 2, null] } },
    tokenizerHash: 'tok-abc123',
    tokenizerJson: { type: 'bpe', merges: [['a', 'b']], vocab: { a: 0, b: 1, ab: 2 }, unicode: 'héllo ✓' },
    step: 7,
    weights,
    ...over,
  };
}

/** Saves the sample checkpoint into a fresh dir, disposing the tensors used to save. */
async function saveSample(dir = freshDir(), over: Partial<SaveCheckpointInput> = {}): Promise<string> {
  const tensors = makeTensors();
  try {
    await saveCheckpoint(dir, baseInput(tensors, over));
  } finally {
    disposeAll(tensors);
  }
  return dir;
}

async function rejectsCheckpoint(p: Promise<unknown>, dir: string, pattern: RegExp): Promise<CheckpointError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CheckpointError, `expected a CheckpointError, got ${String(caught)}`);
  assert.equal(caught.name, 'CheckpointError');
  assert.ok(caught.message.startsWith(dir), `message should start with the path: ${caught.message}`);
  assert.match(caught.message, pattern);
  return caught;
}

async function editMeta(dir: string, edit: (meta: any) => void): Promise<void> {
  const path = join(dir, 'meta.json');
  const meta = JSON.parse(await readFile(path, 'utf8'));
  edit(meta);
  await writeFile(path, JSON.stringify(meta));
}

async function siblingsOf(dir: string): Promise<string[]> {
  const name = dir.slice(root.length + 1);
  return (await readdir(root)).filter((n) => n.startsWith(`${name}.`));
}

async function assertLoadsSample(dir: string): Promise<void> {
  const ck = await loadCheckpoint(dir, { expect: { kind: 'policy', names: expectedNames() } });
  try {
    for (const a of sampleArrays()) {
      assert.deepEqual(bitsOf(ck.weights.get(a.name)!.dataSync() as Float32Array), bitsOf(a.values), a.name);
    }
  } finally {
    disposeAll(ck.weights);
  }
}

describe('checkpoint store', () => {
  test('round-trip is bit-exact', async () => {
    const dir = freshDir();
    const arrays = sampleArrays();
    const tensors = makeTensors(arrays);
    const meta = await saveCheckpoint(
      dir,
      baseInput(tensors, { parent: 'runs/pretrain/step-100', metrics: { loss: 2.5, ppl: 12.18 }, extra: { note: 'x', n: [1] } }),
    );
    // The caller's tensors are untouched and not disposed.
    for (const [i, { tensor }] of tensors.entries()) {
      assert.equal(tensor.isDisposed, false);
      assert.deepEqual(bitsOf(tensor.dataSync() as Float32Array), bitsOf(arrays[i].values));
    }
    disposeAll(tensors);

    assert.equal(meta.format, 2);
    assert.deepEqual(meta.weights.tensors.map((t) => t.name), arrays.map((a) => a.name));
    for (const t of meta.weights.tensors) assert.equal(t.offset % 4, 0);
    assert.equal(await sha256File(join(dir, 'model.safetensors')), meta.weights.sha256);
    assert.equal(await checkpointWeightsSha256(dir), meta.weights.sha256);
    assert.deepEqual(await readCheckpointMeta(dir), meta);

    const ck = await loadCheckpoint(dir, { expect: { kind: 'policy', names: expectedNames() } });
    try {
      assert.deepEqual(ck.meta, meta);
      assert.deepEqual([...ck.weights.keys()], arrays.map((a) => a.name));
      for (const a of arrays) {
        const t = ck.weights.get(a.name)!;
        assert.equal(t.dtype, a.dtype, a.name);
        assert.deepEqual(t.shape, a.shape, a.name);
        const data = (await t.data()) as Float32Array | Int32Array;
        assert.deepEqual(bitsOf(data), bitsOf(a.values), `bits of ${a.name}`);
      }
      const special = (await ck.weights.get('special')!.data()) as Float32Array;
      assert.ok(Object.is(special[5], -0) && Number.isNaN(special[0]) && special[6] > 0 && special[6] < 1e-44);
      assert.deepEqual(Array.from((await ck.weights.get('ints')!.data()) as Int32Array), INT32_VALUES);
      assert.deepEqual(ck.tokenizerJson, baseInput([]).tokenizerJson);
      assert.deepEqual(ck.meta.config, baseInput([]).config);
      assert.equal(ck.meta.parent, 'runs/pretrain/step-100');
      assert.deepEqual(ck.meta.metrics, { loss: 2.5, ppl: 12.18 });
      assert.deepEqual(ck.meta.extra, { note: 'x', n: [1] });
      assert.equal(ck.resume, undefined);
    } finally {
      disposeAll(ck.weights);
    }

    // Record input (object key order) works the same way.
    const recordDir = freshDir();
    const rec = Object.fromEntries(makeTensors().map(({ name, tensor }) => [name, tensor]));
    await saveCheckpoint(recordDir, baseInput(rec));
    for (const t of Object.values(rec)) t.dispose();
    await assertLoadsSample(recordDir);
    assert.deepEqual(await readFile(join(recordDir, 'model.safetensors')), await readFile(join(dir, 'model.safetensors')));
  });

  test('a corrupted byte in model.safetensors is refused with a sha256 error', async () => {
    const dir = await saveSample();
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    bytes[17] ^= 0x01;
    await writeFile(path, bytes);
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /model\.safetensors sha256 mismatch/);
    assert.notEqual(await checkpointWeightsSha256(dir), (await readCheckpointMeta(dir)).weights.sha256);
  });

  test('a truncated weights file is refused', async () => {
    const dir = await saveSample();
    const { weights } = await readCheckpointMeta(dir);
    await truncate(join(dir, 'model.safetensors'), weights.bytes - 4);
    await rejectsCheckpoint(loadCheckpoint(dir), dir, new RegExp(`model\\.safetensors is truncated: it has ${weights.bytes - 4} bytes, the manifest says ${weights.bytes}`));
    await rm(join(dir, 'model.safetensors'));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /model\.safetensors is missing/);
  });

  test('a manifest/shape mismatch against the expected model is refused naming the tensor', async () => {
    const dir = await saveSample();
    const names = expectedNames();
    await rejectsCheckpoint(
      loadCheckpoint(dir, { expect: { names: { ...names, wte: [4, 3] } } }),
      dir,
      /tensor 'wte' has shape \[3,4\], expected \[4,3\]/,
    );
    const { special: _drop, ...withoutSpecial } = names;
    await rejectsCheckpoint(
      loadCheckpoint(dir, { expect: { names: { ...withoutSpecial, 'h.0.attn': [4] } } }),
      dir,
      /missing tensors: 'h\.0\.attn'; unexpected tensors: 'special'/,
    );
    await rejectsCheckpoint(loadCheckpoint(dir, { expect: { kind: 'reward' } }), dir, /kind is 'policy', expected 'reward'/);
    // A manifest that does not agree with itself is refused too, naming the tensor.
    await editMeta(dir, (m) => (m.weights.tensors[0].shape = [3, 5]));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /tensor 0 'wte' has length 48 bytes but shape \[3,5\] needs 60/);
    await editMeta(dir, (m) => {
      m.weights.tensors[0].shape = [3, 4];
      m.weights.tensors[1].offset = 40;
    });
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /tensors 'wte' and 'special' overlap/);
    await editMeta(dir, (m) => (m.weights.tensors[1].offset = m.weights.bytes));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /tensor 1 'special' spans bytes .* beyond the file size/);
  });

  test('malformed meta.json is refused naming the field', async () => {
    const dir = await saveSample();
    const original = await readFile(join(dir, 'meta.json'), 'utf8');
    const cases: Array<[(m: any) => void, RegExp]> = [
      [(m) => (m.step = 'seven'), /meta\.json is invalid: step: /],
      [(m) => delete m.weights.sha256, /weights\.sha256: /],
      [(m) => (m.weights.tensors[1].dtype = 'float16'), /weights\.tensors\[1\]\.dtype: /],
      [(m) => (m.kind = 'critic'), /kind: /],
      [(m) => (m.format = 3), /format: /],
      [(m) => (m.created_at = 'yesterday'), /created_at: /],
      [(m) => (m.metrics = { loss: 'low' }), /metrics\.loss: /],
      [(m) => (m.weights.file = '../elsewhere.bin'), /weights\.file: /],
    ];
    for (const [edit, pattern] of cases) {
      await writeFile(join(dir, 'meta.json'), original);
      await editMeta(dir, edit);
      await rejectsCheckpoint(readCheckpointMeta(dir), dir, pattern);
      await rejectsCheckpoint(loadCheckpoint(dir), dir, pattern);
    }
    await writeFile(join(dir, 'meta.json'), original.slice(0, 40));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /meta\.json is not valid JSON/);
    await rm(join(dir, 'meta.json'));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /not a checkpoint directory \(meta\.json is missing\)/);
    const nowhere = join(root, 'does-not-exist');
    await rejectsCheckpoint(readCheckpointMeta(nowhere), nowhere, /meta\.json is missing/);
  });

  test('a failed save leaves the previous checkpoint intact', async () => {
    const dir = await saveSample();
    const before = await readFile(join(dir, 'model.safetensors'));
    const metaBefore = await readFile(join(dir, 'meta.json'), 'utf8');

    const good = makeTensors(sampleArrays(2));
    const disposed = tf.tensor([1, 2]);
    disposed.dispose();
    const rejecting = {
      dtype: 'float32',
      shape: [2],
      size: 2,
      isDisposed: false,
      data: () => Promise.reject(new Error('device lost')),
    } as unknown as tf.Tensor;
    const boolTensor = tf.tensor([true, false], [2], 'bool');
    const attempts: Array<[SaveCheckpointInput, RegExp]> = [
      [baseInput([...good, { name: 'wte', tensor: good[1].tensor }]), /weights: duplicate tensor name 'wte'/],
      [baseInput([...good, { name: 'broken', tensor: rejecting }]), /tensor 'broken': reading its data failed: device lost/],
      [baseInput([...good, { name: 'gone', tensor: disposed }]), /tensor 'gone' is disposed/],
      [baseInput([...good, { name: 'mask', tensor: boolTensor }]), /tensor 'mask' has dtype 'bool'/],
      [baseInput([...good, { name: '', tensor: good[0].tensor }]), /weights\[5\] has no name/],
      [baseInput(good, { metrics: { loss: Number.NaN } }), /invalid checkpoint metadata: metrics\.loss: /],
      [baseInput(good, { step: -1 }), /invalid checkpoint metadata: step: /],
      [baseInput(good, { tokenizerJson: { big: 10n } }), /tokenizerJson is not JSON-serialisable/],
      [
        baseInput(good, { resume: { optimizerName: 'adam', tensors: [{ name: 'm', tensor: good[0].tensor }, { name: 'm', tensor: good[0].tensor }], state: {} } }),
        /resume\.tensors: duplicate tensor name 'm'/,
      ],
    ];
    for (const [input, pattern] of attempts) {
      await rejectsCheckpoint(saveCheckpoint(dir, input), dir, pattern);
      assert.deepEqual(await readFile(join(dir, 'model.safetensors')), before);
      assert.equal(await readFile(join(dir, 'meta.json'), 'utf8'), metaBefore);
      assert.deepEqual(await siblingsOf(dir), [], 'no temp or old dirs left behind');
    }
    await assertLoadsSample(dir);
    for (const { tensor } of good) assert.equal(tensor.isDisposed, false);
    disposeAll(good);
    boolTensor.dispose();

    // A failure in the middle of writing the files (after some were written) leaves the old dir intact too.
    await assert.rejects(
      writeDirAtomically(dir, async (tmp) => {
        await writeFileDurable(join(tmp, 'model.safetensors'), new Uint8Array(8));
        throw new Error('disk full');
      }),
      /disk full/,
    );
    assert.deepEqual(await siblingsOf(dir), []);
    await assertLoadsSample(dir);

    // And a successful save replaces it completely, leaving nothing behind.
    const v2 = makeTensors(sampleArrays(3));
    await saveCheckpoint(dir, baseInput(v2, { step: 8 }));
    disposeAll(v2);
    assert.equal((await readCheckpointMeta(dir)).step, 8);
    assert.notDeepEqual(await readFile(join(dir, 'model.safetensors')), before);
    assert.deepEqual(await siblingsOf(dir), []);
  });

  test('resume state round-trips', async () => {
    const dir = freshDir();
    const weights = makeTensors();
    const m = tf.tensor(f32FromBits(SPECIAL_F32_BITS), [16]);
    const v = tf.tensor([[0.25, 1e-30], [3.5e38, -0]], [2, 2]);
    const count = tf.tensor([12345], [1], 'int32');
    const state = { step: 7, rngSeed: 987654321, data: { shard: 3, position: 1024 }, lrSchedule: [0.1, 0.01] };
    await saveCheckpoint(dir, baseInput(weights, { resume: { optimizerName: 'adam', tensors: [{ name: 'v/w', tensor: v }, { name: 'm/w', tensor: m }, { name: 'count', tensor: count }], state } }));
    assert.equal(await checkpointHasResume(dir), true);

    const ck = await loadCheckpoint(dir, { withResume: true, expect: { names: expectedNames() } });
    try {
      assert.ok(ck.resume);
      assert.equal(ck.resume.optimizerName, 'adam');
      assert.deepEqual(ck.resume.state, state);
      assert.deepEqual(ck.resume.tensors.map((t) => t.name), ['v/w', 'm/w', 'count']);
      const originals = [v, m, count];
      for (const [i, { tensor }] of ck.resume.tensors.entries()) {
        assert.deepEqual(tensor.shape, originals[i].shape);
        assert.equal(tensor.dtype, originals[i].dtype);
        assert.deepEqual(bitsOf((await tensor.data()) as Float32Array), bitsOf((await originals[i].data()) as Float32Array));
      }
    } finally {
      disposeAll(ck.weights);
      if (ck.resume) disposeAll(ck.resume.tensors);
    }
    const plain = await loadCheckpoint(dir);
    assert.equal(plain.resume, undefined);
    disposeAll(plain.weights);
    disposeAll(weights);
    for (const t of [m, v, count]) t.dispose();

    // No resume state: withResume is refused; without it, loading works.
    const noResume = await saveSample();
    assert.equal(await checkpointHasResume(noResume), false);
    await rejectsCheckpoint(loadCheckpoint(noResume, { withResume: true }), noResume, /has no resume state/);

    // A corrupted optimizer file is refused.
    const optPath = join(dir, 'optimizer.bin');
    const bytes = await readFile(optPath);
    bytes[3] ^= 0x80;
    await writeFile(optPath, bytes);
    await rejectsCheckpoint(loadCheckpoint(dir, { withResume: true }), dir, /optimizer\.bin sha256 mismatch/);
  });

  test('loading creates no tensors when verification fails', async () => {
    const start = tf.memory().numTensors;
    const failures: Array<[string, (dir: string) => Promise<void>, Parameters<typeof loadCheckpoint>[1], RegExp]> = [
      ['corrupt weights', async (d) => { const p = join(d, 'model.safetensors'); const b = await readFile(p); b[0] ^= 1; await writeFile(p, b); }, {}, /model\.safetensors/],
      ['truncated weights', async (d) => truncate(join(d, 'model.safetensors'), 10), {}, /model\.safetensors/],
      ['bad meta', (d) => editMeta(d, (m) => (m.step = null)), {}, /meta\.json is invalid: .*step/],
      ['shape mismatch', async () => {}, { expect: { names: { ...expectedNames(), ints: [8] } } }, /weights do not match the expected model: .*ints/],
      ['missing tokenizer', (d) => rm(join(d, 'tokenizer.json')), {}, /tokenizer\.json is missing/],
      // Weights verify fine here; only the resume state is bad, checked before any tensor is made.
      ['corrupt optimizer', async (d) => { const p = join(d, 'optimizer.bin'); const b = await readFile(p); b[5] ^= 1; await writeFile(p, b); }, { withResume: true }, /optimizer\.bin sha256 mismatch \(corrupted\)/],
      ['bad train_state', async (d) => { const p = join(d, 'train_state.json'); const s = JSON.parse(await readFile(p, 'utf8')); s.optimizer.tensors[0].dtype = 'bool'; await writeFile(p, JSON.stringify(s)); }, { withResume: true }, /train_state\.json is invalid: .*dtype/],
    ];
    for (const [label, breakIt, opts, message] of failures) {
      const dir = freshDir();
      const opt = tf.tensor([1, 2, 3, 4]);
      const weights = makeTensors();
      await saveCheckpoint(dir, baseInput(weights, { resume: { optimizerName: 'adam', tensors: [{ name: 'm', tensor: opt }], state: null } }));
      disposeAll(weights);
      opt.dispose();
      assert.equal(tf.memory().numTensors, start, `${label}: saving leaks no tensors`);
      await breakIt(dir);
      await rejectsCheckpoint(loadCheckpoint(dir, opts), dir, message);
      assert.equal(tf.memory().numTensors, start, `${label}: no tensors created`);
    }
  });

  test('save+load 50 times keeps tf.memory().numTensors flat', async () => {
    const dir = freshDir();
    const weights = makeTensors();
    const opt = tf.tensor([0.5, -0.5]);
    const start = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      await saveCheckpoint(dir, baseInput(weights, { step: i, resume: { optimizerName: 'adam', tensors: [{ name: 'm', tensor: opt }], state: { i } } }));
      const ck = await loadCheckpoint(dir, { withResume: true, expect: { kind: 'policy', names: expectedNames() } });
      assert.equal(ck.meta.step, i);
      assert.deepEqual(ck.resume?.state, { i });
      assert.equal(tf.memory().numTensors, start + weights.length + 1);
      disposeAll(ck.weights);
      if (ck.resume) disposeAll(ck.resume.tensors);
      assert.equal(tf.memory().numTensors, start, `iteration ${i}`);
    }
    assert.deepEqual(await siblingsOf(dir), []);
    disposeAll(weights);
    opt.dispose();
  });
});

describe('checkpoint weights are safetensors', () => {
  /** The file as the safetensors spec reads it, parsed here without the checkpoint code. */
  function readSpec(bytes: Buffer): { header: Record<string, any>; headerBytes: Buffer; data: Buffer } {
    const n = Number(bytes.readBigUInt64LE(0));
    const headerBytes = bytes.subarray(8, 8 + n);
    return { header: JSON.parse(headerBytes.toString('utf8')), headerBytes, data: bytes.subarray(8 + n) };
  }

  test('model.safetensors follows the spec: LE header length, padded JSON header, tensors tiling the data', async () => {
    const dir = await saveSample();
    const bytes = await readFile(join(dir, 'model.safetensors'));
    const { header, headerBytes, data } = readSpec(bytes);
    assert.equal((8 + headerBytes.length) % 8, 0, 'data starts 8-byte aligned');
    assert.match(headerBytes.toString('utf8'), /^\{.*\} *$/s, 'padded with spaces');
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    let end = 0;
    for (const a of sampleArrays()) {
      const e = header[a.name];
      assert.deepEqual(e.dtype, a.dtype === 'float32' ? 'F32' : 'I32', a.name);
      assert.deepEqual(e.shape, a.shape, a.name);
      assert.equal(e.data_offsets[0], end, `${a.name} starts where the previous ended`);
      end = e.data_offsets[1];
      const raw = data.subarray(e.data_offsets[0], e.data_offsets[1]);
      assert.deepEqual(bitsOf(new Uint8Array(raw)), bitsOf(a.values), `bits of ${a.name}`);
    }
    assert.equal(end, data.length, 'no bytes after the last tensor');
  });

  test('a header edited to disagree with meta.json (file re-hashed) is refused naming the tensor', async () => {
    const dir = await saveSample();
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    const { headerBytes } = readSpec(bytes);
    const edited = Buffer.from(headerBytes.toString('utf8').replace('"shape":[3,4]', '"shape":[4,3]'));
    assert.equal(edited.length, headerBytes.length);
    const rewritten = Buffer.concat([bytes.subarray(0, 8), edited, bytes.subarray(8 + headerBytes.length)]);
    await writeFile(path, rewritten);
    await editMeta(dir, (m) => (m.weights.sha256 = createHash('sha256').update(rewritten).digest('hex')));
    await rejectsCheckpoint(loadCheckpoint(dir), dir, /model\.safetensors describes tensor 'wte' as float32 \[4,3\] at 0, meta\.json as float32 \[3,4\] at 0/);
  });

  test('a format-1 checkpoint (weights.bin) still loads, and migrateCheckpoint converts it bit-exactly', async () => {
    // Build the old layout from a new checkpoint: the same tensors packed into weights.bin.
    const dir = freshDir();
    const opt = tf.tensor([0.25, -4]);
    const weights = makeTensors();
    await saveCheckpoint(dir, baseInput(weights, { resume: { optimizerName: 'adam', tensors: [{ name: 'm', tensor: opt }], state: { step: 3 } } }));
    disposeAll(weights);
    opt.dispose();
    const current = await readCheckpointMeta(dir);
    const { data } = readSpec(await readFile(join(dir, 'model.safetensors')));
    const legacy = packTensors(unpackTensors(new Uint8Array(data), current.weights.tensors));
    await rm(join(dir, 'model.safetensors'));
    await writeFile(join(dir, 'weights.bin'), legacy.bytes);
    await editMeta(dir, (m) => {
      m.format = 1;
      m.weights = { file: 'weights.bin', sha256: createHash('sha256').update(legacy.bytes).digest('hex'), bytes: legacy.bytes.length, tensors: legacy.tensors };
    });
    assert.equal((await readCheckpointMeta(dir)).format, 1);
    await assertLoadsSample(dir);
    // Mixing the formats is refused.
    await editMeta(dir, (m) => (m.format = 2));
    await rejectsCheckpoint(readCheckpointMeta(dir), dir, /weights\.file: format 2 keeps its weights in model\.safetensors/);
    await editMeta(dir, (m) => (m.format = 1));

    const optimizerBefore = await readFile(join(dir, 'optimizer.bin'));
    const migrated = await migrateCheckpoint(dir);
    assert.ok(migrated);
    assert.equal(migrated.format, 2);
    assert.deepEqual((await readdir(dir)).sort(), ['meta.json', 'model.safetensors', 'optimizer.bin', 'tokenizer.json', 'train_state.json']);
    assert.deepEqual(await readFile(join(dir, 'optimizer.bin')), optimizerBefore);
    assert.equal(migrated.created_at, current.created_at);
    assert.deepEqual(migrated.config, current.config);
    await assertLoadsSample(dir);
    const ck = await loadCheckpoint(dir, { withResume: true });
    assert.deepEqual(ck.resume?.state, { step: 3 });
    disposeAll(ck.weights);
    disposeAll(ck.resume!.tensors);
    assert.equal(await migrateCheckpoint(dir), null, 'a second run has nothing to do');
  });

  test('a corrupted legacy weights.bin is refused by migrateCheckpoint and the directory is left as it was', async () => {
    const dir = await saveSample();
    const current = await readCheckpointMeta(dir);
    const { data } = readSpec(await readFile(join(dir, 'model.safetensors')));
    const legacy = packTensors(unpackTensors(new Uint8Array(data), current.weights.tensors));
    await rm(join(dir, 'model.safetensors'));
    legacy.bytes[3] ^= 1;
    await writeFile(join(dir, 'weights.bin'), legacy.bytes);
    legacy.bytes[3] ^= 1;
    await editMeta(dir, (m) => {
      m.format = 1;
      m.weights = { file: 'weights.bin', sha256: createHash('sha256').update(legacy.bytes).digest('hex'), bytes: legacy.bytes.length, tensors: legacy.tensors };
    });
    await rejectsCheckpoint(migrateCheckpoint(dir), dir, /weights\.bin sha256 mismatch/);
    assert.deepEqual((await readdir(dir)).sort(), ['meta.json', 'tokenizer.json', 'weights.bin']);
  });
});
