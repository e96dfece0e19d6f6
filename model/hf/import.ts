/**
 * A Hugging Face GPT-2-family directory (gpt2, distilgpt2, any GPT2LMHeadModel with a byte-level BPE in
 * tokenizer.json or vocab.json + merges.txt, weights in model.safetensors as F32, F16, BF16 or F64;
 * float32 here) as our policy checkpoint.
 * The chat special tokens are appended to the vocabulary when absent; their embedding rows start as the
 * mean of the existing rows (so they begin as an "average token", not as noise). Everything is checked
 * before anything is written; a directory that is not GPT-2-compatible gets an HfFormatError naming
 * what differs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { decodeSafetensors, type CheckpointMeta, type RawTensor } from '../checkpoint/index.ts';
import { countParams } from '../gpt/config.ts';
import { saveCheckpoint } from '../checkpoint/index.ts';
import { configFromHf, hfTensorNames } from './gpt2-layout.ts';
import { fromHfTokenizerJson, fromVocabAndMerges, HfFormatError, type ImportedTokenizer } from './hf-tokenizer.ts';

interface ImportResult {
  out: string;
  meta: CheckpointMeta;
  addedChatTokens: { id: number; text: string }[];
  params: number;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HfFormatError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readTokenizer(dir: string): Promise<ImportedTokenizer> {
  if (await exists(join(dir, 'tokenizer.json'))) return fromHfTokenizerJson(await readJson(join(dir, 'tokenizer.json')));
  if ((await exists(join(dir, 'vocab.json'))) && (await exists(join(dir, 'merges.txt')))) {
    return fromVocabAndMerges(await readJson(join(dir, 'vocab.json')), await readFile(join(dir, 'merges.txt'), 'utf8'));
  }
  throw new HfFormatError(`${dir} has no tokenizer.json and no vocab.json + merges.txt`);
}

async function readWeights(dir: string): Promise<Map<string, RawTensor>> {
  const path = join(dir, 'model.safetensors');
  if (!(await exists(path))) {
    const other = (await exists(join(dir, 'pytorch_model.bin'))) ? ' (it has pytorch_model.bin: save it as safetensors, e.g. `model.save_pretrained(dir, safe_serialization=True)`)' : '';
    throw new HfFormatError(`${dir} has no model.safetensors${other}`);
  }
  let decoded;
  try {
    decoded = decodeSafetensors(await readFile(path));
  } catch (err) {
    throw new HfFormatError(`${path}: ${(err as Error).message}`);
  }
  // Buffers some files carry (the attention mask) may be BOOL or U8; anything else must be a float.
  const notFloat = decoded.skipped.filter((t) => !/\.attn\.(bias|masked_bias)$/.test(t.name));
  if (notFloat.length > 0) throw new HfFormatError(`${path}: tensor '${notFloat[0].name}' is ${notFloat[0].dtype}; weights must be F32, F16, BF16 or F64`);
  // GPT2LMHeadModel prefixes "transformer."; GPT2Model (and the original gpt2 upload) does not.
  const byName = new Map<string, RawTensor>();
  for (const t of decoded.tensors) byName.set(t.name.startsWith('transformer.') || t.name.startsWith('lm_head.') ? t.name : `transformer.${t.name}`, t);
  return byName;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export async function importHf(from: string, out: string, log: (line: string) => void = () => {}): Promise<ImportResult> {
  const configPath = join(from, 'config.json');
  if (!(await exists(configPath))) throw new HfFormatError(`${from} has no config.json (not a Hugging Face model directory)`);
  const hfConfig = await readJson(configPath);
  const imported = await readTokenizer(from);
  const { tokenizer, addedChatTokens, originalVocabSize } = imported;
  const config = configFromHf(hfConfig, tokenizer.vocabSize);
  const hfVocab = (hfConfig as { vocab_size?: unknown }).vocab_size;
  if (hfVocab !== originalVocabSize) throw new HfFormatError(`config.json vocab_size is ${String(hfVocab)} but the tokenizer has ${originalVocabSize} tokens`);
  const weights = await readWeights(from);
  const dropout = (hfConfig as { resid_pdrop?: unknown }).resid_pdrop;
  if (typeof dropout === 'number' && dropout >= 0 && dropout <= 0.9) config.dropout = dropout;

  const D = config.dModel;
  const expected = new Map<string, number[]>([['wte', [originalVocabSize, D]], ['wpe', [config.context, D]]]);
  for (let i = 0; i < config.nLayers; i++) {
    const shapes: [string, number[]][] = [
      ['ln1/gamma', [D]], ['ln1/beta', [D]], ['attn/w_qkv', [D, 3 * D]], ['attn/b_qkv', [3 * D]], ['attn/w_out', [D, D]], ['attn/b_out', [D]],
      ['ln2/gamma', [D]], ['ln2/beta', [D]], ['mlp/w_fc', [D, 4 * D]], ['mlp/b_fc', [4 * D]], ['mlp/w_proj', [4 * D, D]], ['mlp/b_proj', [D]],
    ];
    for (const [n, s] of shapes) expected.set(`h${i}/${n}`, s);
  }
  expected.set('ln_f/gamma', [D]);
  expected.set('ln_f/beta', [D]);

  const names = hfTensorNames(config.nLayers);
  const ours: RawTensor[] = [];
  for (const [name, hfName] of names) {
    const t = weights.get(hfName);
    if (t === undefined) throw new HfFormatError(`model.safetensors has no tensor '${hfName}'`);
    if (t.dtype !== 'float32') throw new HfFormatError(`tensor '${hfName}' is ${t.dtype}; weights must be floating point`);
    const shape = expected.get(name)!;
    if (!sameShape(t.shape, shape)) throw new HfFormatError(`tensor '${hfName}' has shape [${t.shape}], expected [${shape}] for this config`);
    ours.push({ ...t, name });
    weights.delete(hfName);
  }
  const lmHead = weights.get('lm_head.weight');
  if (lmHead !== undefined) {
    const wte = ours[0].data;
    if (lmHead.data.length !== wte.length || lmHead.data.some((x, i) => !Object.is(x, wte[i]))) {
      throw new HfFormatError('lm_head.weight differs from wte: untied output embeddings are not supported');
    }
    weights.delete('lm_head.weight');
  }
  // Attention-mask buffers some GPT-2 files carry are not weights.
  const unexpected = [...weights.keys()].filter((n) => !/\.attn\.(bias|masked_bias)$/.test(n));
  if (unexpected.length > 0) throw new HfFormatError(`model.safetensors has tensors GPT-2 does not: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` (and ${unexpected.length - 5} more)` : ''}`);

  if (addedChatTokens.length > 0) {
    const wte = ours[0].data as Float32Array;
    const mean = new Float64Array(D);
    for (let r = 0; r < originalVocabSize; r++) for (let c = 0; c < D; c++) mean[c] += wte[r * D + c];
    const grown = new Float32Array((originalVocabSize + addedChatTokens.length) * D);
    grown.set(wte);
    for (let r = originalVocabSize; r < originalVocabSize + addedChatTokens.length; r++) for (let c = 0; c < D; c++) grown[r * D + c] = mean[c] / originalVocabSize;
    ours[0] = { ...ours[0], shape: [tokenizer.vocabSize, D], data: grown };
    log(`added chat tokens ${addedChatTokens.map((t) => `${t.text}=${t.id}`).join(' ')}; their embedding rows are the mean of the ${originalVocabSize} existing rows`);
  }

  const tensors = ours.map((t) => ({ name: t.name, tensor: tf.tensor(t.data, t.shape, t.dtype) }));
  try {
    const meta = await saveCheckpoint(out, {
      kind: 'policy',
      config,
      tokenizerHash: tokenizer.hash,
      tokenizerJson: tokenizer.toJSON(),
      step: 0,
      parent: resolve(from),
      extra: { imported_from: resolve(from), added_chat_tokens: addedChatTokens },
      weights: tensors,
    });
    return { out, meta, addedChatTokens, params: countParams(config) };
  } finally {
    for (const { tensor } of tensors) tensor.dispose();
  }
}
