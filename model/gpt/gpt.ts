/**
 * Decoder-only transformer (GPT-2 layout): token + learned position embeddings, pre-LayerNorm blocks of
 * multi-head causal self-attention and a 4x GELU MLP, final LayerNorm, output projection tied to the
 * token embedding; optionally a scalar head on the same trunk (reward and value models).
 *
 * References: Radford et al. 2019 (GPT-2); Karpathy's nanoGPT `model.py` for the layout.
 *
 * Two forward paths share the blocks: `hidden` over whole sequences (training; gradients flow) and
 * `prefill`/`step` with a KV cache (generation; ragged batches left-padded). The engine knows token
 * ids only; text is the tokenizer's business.
 */
import * as tf from '@tensorflow/tfjs-core';
import { attentionCached, attentionFull, causalBiasMatrix, type LayerCache } from './attention.ts';
import type { GPTConfig } from './config.ts';
import { KVCache } from './kv-cache.ts';
import { embedding, gelu, layerNorm, linear, matMulBT, maybeDropout, tidyKeep } from './ops.ts';
import { initParams, namedParams, nextModelPrefix, type BlockParams, type GPTParams } from './params.ts';

interface GPTOptions {
  /** Variable-name prefix; a fresh unique one by default. */
  prefix?: string;
  /** Add a scalar head (reward/value models). */
  scalarHead?: boolean;
}

interface StepResult {
  /** Next-token logits per sequence, each (V). */
  logits: Float32Array[];
  cache: KVCache;
}

const NEG = -1e9;

export class GPT {
  readonly prefix: string;
  readonly params: GPTParams;
  readonly hasScalarHead: boolean;
  private readonly causalBiases = new Map<number, tf.Tensor2D>();
  /** The token embedding transposed for generation, and which variable data it was made from. */
  private projection: { t: tf.Tensor2D; source: object } | null = null;
  private disposed = false;

  constructor(
    readonly config: GPTConfig,
    opts: GPTOptions = {},
  ) {
    this.prefix = opts.prefix ?? nextModelPrefix();
    this.hasScalarHead = opts.scalarHead ?? false;
    this.params = initParams(config, this.prefix, this.hasScalarHead);
  }

  /** Variables keyed by name without the instance prefix (checkpoint names). */
  namedWeights(): Map<string, tf.Variable> {
    return namedParams(this.params, this.prefix);
  }

  /** Every variable, for an optimizer's explicit var list. */
  trainableVariables(): tf.Variable[] {
    return [...this.namedWeights().values()];
  }

  /** Expected shape of each named weight. */
  weightShapes(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [name, v] of this.namedWeights()) out[name] = v.shape;
    return out;
  }

  /**
   * Copies weights in (e.g. from a checkpoint). Every name and shape is checked before any variable
   * is assigned, so a mismatch never leaves a half-loaded model.
   */
  loadWeights(weights: Map<string, tf.Tensor>): void {
    const mine = this.namedWeights();
    for (const [name, v] of mine) {
      const w = weights.get(name);
      if (!w) throw new Error(`weights lack '${name}'`);
      if (w.shape.join(',') !== v.shape.join(',')) {
        throw new Error(`weight '${name}' has shape [${w.shape}], model expects [${v.shape}]`);
      }
    }
    for (const name of weights.keys()) if (!mine.has(name)) throw new Error(`unexpected weight '${name}'`);
    for (const [name, v] of mine) v.assign(weights.get(name)!);
  }

  /** Copies every weight of `other` (same config) into this model, e.g. policy -> frozen reference. */
  copyWeightsFrom(other: GPT): void {
    const theirs = other.namedWeights();
    const picked = new Map<string, tf.Tensor>();
    for (const name of this.namedWeights().keys()) {
      const w = theirs.get(name);
      if (w) picked.set(name, w);
    }
    this.loadWeights(picked);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.namedWeights().values()) v.dispose();
    for (const t of this.causalBiases.values()) t.dispose();
    this.causalBiases.clear();
    this.projection?.t.dispose();
    this.projection = null;
  }

  /**
   * Next-token logits for generation: the same product as `lmLogits`, but with the transposed
   * embedding kept between calls (transposing the (V, D) table costs more than the rest of a decode
   * step). It is rebuilt whenever the variable's data changes: `assign` (optimizer updates, weight
   * loads, hot swaps) gives a variable a new dataId. No gradient flows through the kept copy.
   * hidden: (N, D) -> (N, V)
   */
  private generationLogits(hidden: tf.Tensor2D): tf.Tensor2D {
    const wte = this.params.tokenEmbedding;
    const source = (wte as unknown as { dataId: object }).dataId;
    if (!this.projection || this.projection.source !== source) {
      this.projection?.t.dispose();
      this.projection = { t: tf.keep(tf.transpose(wte as tf.Tensor2D)), source }; // (D, V)
    }
    return tf.matMul(hidden, this.projection.t); // (N, D) @ (D, V)
  }

  private block(x: tf.Tensor2D, p: BlockParams, training: boolean, attend: (qkv: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    const drop = this.config.dropout;
    const qkv = linear(layerNorm(x, p.ln1Gamma as tf.Tensor1D, p.ln1Beta as tf.Tensor1D), p.wQkv as tf.Tensor2D, p.bQkv as tf.Tensor1D); // (N, 3D)
    const attnOut = linear(attend(qkv), p.wAttnOut as tf.Tensor2D, p.bAttnOut as tf.Tensor1D); // (N, D)
    const x1 = tf.add(x, maybeDropout(attnOut, drop, training)) as tf.Tensor2D; // (N, D)
    const h = layerNorm(x1, p.ln2Gamma as tf.Tensor1D, p.ln2Beta as tf.Tensor1D); // (N, D)
    const mlp = linear(gelu(linear(h, p.wFc as tf.Tensor2D, p.bFc as tf.Tensor1D)), p.wProj as tf.Tensor2D, p.bProj as tf.Tensor1D); // (N, D)
    return tf.add(x1, maybeDropout(mlp, drop, training)) as tf.Tensor2D; // (N, D)
  }

  private embed(ids: tf.Tensor1D, positions: tf.Tensor1D, training: boolean): tf.Tensor2D {
    const tok = embedding(this.params.tokenEmbedding as tf.Tensor2D, ids); // (N, D)
    const pos = embedding(this.params.positionEmbedding as tf.Tensor2D, positions); // (N, D)
    return maybeDropout(tf.add(tok, pos), this.config.dropout, training);
  }

  private finalNorm(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.params.lnFGamma as tf.Tensor1D, this.params.lnFBeta as tf.Tensor1D);
  }

  private causalBias(t: number): tf.Tensor2D {
    let bias = this.causalBiases.get(t);
    if (!bias) {
      bias = tf.keep(causalBiasMatrix(t));
      this.causalBiases.set(t, bias);
    }
    return bias;
  }

  /**
   * Final hidden states over whole sequences starting at position 0 (training and scoring path).
   * Call inside tf.tidy. ids: (B, T) int32 with T <= context -> (B*T, D)
   */
  hidden(ids: tf.Tensor2D, training = false): tf.Tensor2D {
    const [batch, t] = ids.shape;
    if (t > this.config.context) throw new Error(`sequence length ${t} exceeds context ${this.config.context}`);
    const positions = tf.tile(tf.range(0, t, 1, 'int32'), [batch]) as tf.Tensor1D; // (B*T)
    let x = this.embed(tf.reshape(ids, [batch * t]) as tf.Tensor1D, positions, training); // (B*T, D)
    const bias = this.causalBias(t);
    for (const p of this.params.blocks) {
      x = this.block(x, p, training, (qkv) => attentionFull(qkv, batch, this.config.nHeads, bias));
    }
    return this.finalNorm(x);
  }

  /** Next-token logits from hidden states, through the tied embedding. hidden: (N, D) -> (N, V) */
  lmLogits(hidden: tf.Tensor2D): tf.Tensor2D {
    return matMulBT(hidden, this.params.tokenEmbedding as tf.Tensor2D); // (N, D) @ (V, D)^T
  }

  /** Scalar head (reward/value). hidden: (N, D) -> (N) */
  scalar(hidden: tf.Tensor2D): tf.Tensor1D {
    if (!this.params.scalarW || !this.params.scalarB) throw new Error('this model has no scalar head');
    const y = linear(hidden, this.params.scalarW as tf.Tensor2D, this.params.scalarB as tf.Tensor1D); // (N, 1)
    return tf.reshape(y, [hidden.shape[0]]) as tf.Tensor1D;
  }

  /**
   * Which cached+new columns each new token may attend to: real tokens, not in its future.
   * Returns the extended key validity (B * (Tc+Tn)) and the additive bias (B * Tn * (Tc+Tn)).
   */
  private chunkMask(valid: Uint8Array, batch: number, past: KVCache | null): { keyValid: Uint8Array; bias: Float32Array } {
    const tn = valid.length / batch;
    const tc = past ? past.length : 0;
    const total = tc + tn;
    const keyValid = new Uint8Array(batch * total);
    for (let b = 0; b < batch; b++) {
      if (past) keyValid.set(past.keyValid.subarray(b * tc, (b + 1) * tc), b * total);
      keyValid.set(valid.subarray(b * tn, (b + 1) * tn), b * total + tc);
    }
    const bias = new Float32Array(batch * tn * total);
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < tn; i++) {
        const row = (b * tn + i) * total;
        for (let j = 0; j < total; j++) bias[row + j] = keyValid[b * total + j] && j <= tc + i ? 0 : NEG;
      }
    }
    return { keyValid, bias };
  }

  /**
   * Runs a rectangular chunk of new tokens (B, Tn) through the cached path; positions are per token.
   * Returns hidden states of the chunk (B*Tn, D) and the extended layer caches. Call inside tf.tidy.
   */
  private chunk(
    tokens: Int32Array,
    positions: Int32Array,
    bias: Float32Array,
    batch: number,
    past: KVCache | null,
  ): { hidden: tf.Tensor2D; layers: LayerCache[] } {
    const tn = tokens.length / batch;
    const total = (past ? past.length : 0) + tn;
    const biasT = tf.tensor4d(bias, [batch, 1, tn, total]); // (B, 1, Tn, Tc+Tn)
    let x = this.embed(tf.tensor1d(tokens, 'int32'), tf.tensor1d(positions, 'int32'), false); // (B*Tn, D)
    const layers: LayerCache[] = [];
    this.params.blocks.forEach((p, i) => {
      x = this.block(x, p, false, (qkv) => {
        const r = attentionCached(qkv, batch, this.config.nHeads, past ? past.layers[i] : null, biasT);
        layers.push(r.cache);
        return r.out;
      });
    });
    return { hidden: this.finalNorm(x), layers };
  }

  /**
   * Encodes prompts (ragged; each at least one token, at most `context`) into a fresh cache and returns
   * the next-token logits of each. Prompts are left-padded to a common length. With `allLogits`, also
   * returns the logits at every real position (for tests and scoring).
   */
  async prefill(prompts: number[][], opts: { allLogits?: boolean } = {}): Promise<StepResult & { all?: Float32Array[][] }> {
    if (prompts.length === 0) throw new Error('prefill needs at least one prompt');
    const V = this.config.vocabSize;
    const tn = Math.max(...prompts.map((p) => p.length));
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new Error(`prompt ${i} is empty`);
      if (p.length > this.config.context) throw new Error(`prompt ${i} has ${p.length} tokens; context is ${this.config.context}`);
      for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`prompt ${i} has token id ${id} outside [0, ${V})`);
    });
    const batch = prompts.length;
    const tokens = new Int32Array(batch * tn);
    const valid = new Uint8Array(batch * tn);
    const positions = new Int32Array(batch * tn);
    prompts.forEach((p, b) => {
      const pad = tn - p.length;
      for (let i = 0; i < p.length; i++) {
        tokens[b * tn + pad + i] = p[i];
        valid[b * tn + pad + i] = 1;
        positions[b * tn + pad + i] = i;
      }
    });
    const { keyValid, bias } = this.chunkMask(valid, batch, null);
    const { logits, all, layers } = tidyKeep(() => {
      const r = this.chunk(tokens, positions, bias, batch, null);
      const lastRows = tf.tensor1d(Array.from({ length: batch }, (_, b) => b * tn + tn - 1), 'int32');
      const last = this.generationLogits(tf.gather(r.hidden, lastRows) as tf.Tensor2D); // (B, V)
      const allLogits = opts.allLogits ? this.generationLogits(r.hidden) : null; // (B*Tn, V)
      return { logits: last, all: allLogits, layers: r.layers };
    });
    const nextPos = new Int32Array(prompts.map((p) => p.length));
    const cache = new KVCache(layers, keyValid, nextPos, batch, tn);
    const rows = splitRows(await logits.data(), batch, V);
    logits.dispose();
    let allRows: Float32Array[][] | undefined;
    if (all) {
      const flat = splitRows(await all.data(), batch * tn, V);
      all.dispose();
      allRows = prompts.map((p, b) => flat.slice(b * tn + tn - p.length, (b + 1) * tn));
    }
    return { logits: rows, cache, all: allRows };
  }

  /**
   * Appends one token per sequence and returns the next-token logits. Consumes `cache`.
   * A sequence whose next position would reach `context` is an error: the caller crops and re-prefills.
   */
  async step(cache: KVCache, tokens: number[]): Promise<StepResult> {
    cache.assertLive();
    const V = this.config.vocabSize;
    if (tokens.length !== cache.batch) throw new Error(`step got ${tokens.length} tokens for a batch of ${cache.batch}`);
    for (let b = 0; b < cache.batch; b++) {
      if (cache.nextPos[b] >= this.config.context) throw new Error(`sequence ${b} is full (context ${this.config.context})`);
      const id = tokens[b];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`token id ${id} outside [0, ${V})`);
    }
    const batch = cache.batch;
    const valid = new Uint8Array(batch).fill(1);
    const { keyValid, bias } = this.chunkMask(valid, batch, cache);
    const { logits, layers } = tidyKeep(() => {
      const r = this.chunk(Int32Array.from(tokens), cache.nextPos, bias, batch, cache);
      return { logits: this.generationLogits(r.hidden), layers: r.layers }; // (B, V)
    });
    const nextPos = Int32Array.from(cache.nextPos, (p) => p + 1);
    const next = new KVCache(layers, keyValid, nextPos, batch, cache.length + 1);
    cache.dispose();
    const rows = splitRows(await logits.data(), batch, V);
    logits.dispose();
    return { logits: rows, cache: next };
  }
}

function splitRows(data: Float32Array | Int32Array | Uint8Array, rows: number, width: number): Float32Array[] {
  const flat = data instanceof Float32Array ? data : Float32Array.from(data);
  return Array.from({ length: rows }, (_, r) => flat.slice(r * width, (r + 1) * width));
}
