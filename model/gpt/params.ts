/**
 * The GPT's variables: created once per model instance, named `<prefix>/<path>` so that several models
 * (policy, reference, reward, value) can live in one process without clashing.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from './config.ts';

export interface BlockParams {
  ln1Gamma: tf.Variable; // (D)
  ln1Beta: tf.Variable; // (D)
  wQkv: tf.Variable; // (D, 3D): columns [q | k | v], each split into heads of D/H
  bQkv: tf.Variable; // (3D)
  wAttnOut: tf.Variable; // (D, D)
  bAttnOut: tf.Variable; // (D)
  ln2Gamma: tf.Variable; // (D)
  ln2Beta: tf.Variable; // (D)
  wFc: tf.Variable; // (D, 4D)
  bFc: tf.Variable; // (4D)
  wProj: tf.Variable; // (4D, D)
  bProj: tf.Variable; // (D)
}

export interface GPTParams {
  tokenEmbedding: tf.Variable; // (V, D), tied with the output projection
  positionEmbedding: tf.Variable; // (T, D)
  blocks: BlockParams[];
  lnFGamma: tf.Variable; // (D)
  lnFBeta: tf.Variable; // (D)
  /** Scalar head for reward and value models: (D, 1) and (1). */
  scalarW?: tf.Variable;
  scalarB?: tf.Variable;
}

let instanceCounter = 0;

/** A process-unique variable-name prefix for a new model instance. */
export function nextModelPrefix(base = 'gpt'): string {
  instanceCounter += 1;
  return `${base}_${instanceCounter}`;
}

/** Small deterministic generator of seeds, so each tensor gets its own seed from the config's. */
function seedStream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s;
  };
}

/**
 * Creates freshly initialised variables (GPT-2 scheme: N(0, 0.02), residual projections scaled by
 * 1/sqrt(2L), biases 0, LayerNorm 1/0). Names are relative paths; `prefix` is prepended.
 */
export function initParams(config: GPTConfig, prefix: string, scalarHead: boolean): GPTParams {
  const { vocabSize: V, context: T, dModel: D, nLayers: L } = config;
  const nextSeed = seedStream(config.initSeed);
  const make = (name: string, init: () => tf.Tensor) => {
    const value = init();
    const v = tf.variable(value, true, `${prefix}/${name}`);
    value.dispose();
    return v;
  };
  const normal = (shape: number[], std: number) => () => tf.randomNormal(shape, 0, std, 'float32', nextSeed());
  const zeros = (shape: number[]) => () => tf.zeros(shape);
  const ones = (shape: number[]) => () => tf.ones(shape);
  const residualStd = 0.02 / Math.sqrt(2 * L);

  const blocks: BlockParams[] = [];
  for (let i = 0; i < L; i++) {
    const p = `h${i}`;
    blocks.push({
      ln1Gamma: make(`${p}/ln1/gamma`, ones([D])),
      ln1Beta: make(`${p}/ln1/beta`, zeros([D])),
      wQkv: make(`${p}/attn/w_qkv`, normal([D, 3 * D], 0.02)),
      bQkv: make(`${p}/attn/b_qkv`, zeros([3 * D])),
      wAttnOut: make(`${p}/attn/w_out`, normal([D, D], residualStd)),
      bAttnOut: make(`${p}/attn/b_out`, zeros([D])),
      ln2Gamma: make(`${p}/ln2/gamma`, ones([D])),
      ln2Beta: make(`${p}/ln2/beta`, zeros([D])),
      wFc: make(`${p}/mlp/w_fc`, normal([D, 4 * D], 0.02)),
      bFc: make(`${p}/mlp/b_fc`, zeros([4 * D])),
      wProj: make(`${p}/mlp/w_proj`, normal([4 * D, D], residualStd)),
      bProj: make(`${p}/mlp/b_proj`, zeros([D])),
    });
  }
  const params: GPTParams = {
    tokenEmbedding: make('wte', normal([V, D], 0.02)),
    positionEmbedding: make('wpe', normal([T, D], 0.01)),
    blocks,
    lnFGamma: make('ln_f/gamma', ones([D])),
    lnFBeta: make('ln_f/beta', zeros([D])),
  };
  if (scalarHead) {
    params.scalarW = make('scalar_head/w', normal([D, 1], 1 / Math.sqrt(D + 1)));
    params.scalarB = make('scalar_head/b', zeros([1]));
  }
  return params;
}

/** All variables keyed by their name without the instance prefix (the names checkpoints use). */
export function namedParams(params: GPTParams, prefix: string): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  const add = (v: tf.Variable | undefined) => {
    if (v) out.set(v.name.slice(prefix.length + 1), v);
  };
  add(params.tokenEmbedding);
  add(params.positionEmbedding);
  for (const b of params.blocks) for (const v of Object.values(b)) add(v);
  add(params.lnFGamma);
  add(params.lnFBeta);
  add(params.scalarW);
  add(params.scalarB);
  return out;
}
