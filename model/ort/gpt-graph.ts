/**
 * The GPT's generation forward (the same function as `GPT.prefill`/`GPT.step` in model/gpt) as an ONNX
 * graph, written from a config and the checkpoint's weights.
 *
 * Inputs:  ids, positions (B, Tn) int32; bias (B, 1, Tn, C+Tn) additive mask (causal + key padding +
 *          unused cache columns); rows (R) int32: which of the B*Tn hidden rows get logits; for a step,
 *          past_kt_<l> (B, H, hs, C) and past_v_<l> (B, H, C, hs) per layer.
 * Outputs: logits (R, V); kt_<l> (B, H, hs, Tn) and v_<l> (B, H, Tn, hs): the new tokens' keys
 *          (transposed) and values only.
 *
 * The step reads the cache where it lies: C is the cache's allocated column capacity, columns beyond
 * the real ones are masked by the bias, and the graph never concatenates or copies the past. The new
 * keys and values are scored separately (q·k_new) and their softmax share is split off again, so the
 * only per-step outputs are the new columns, which the cache (ort-kv-cache.ts) writes into its buffers.
 * Keys are stored transposed so q @ k^T is a plain product with no per-step Transpose of the cache.
 * Without it each step copied the whole cache three times (Concat of keys and of values, the keys'
 * transpose) and once more into fresh JS arrays: at batch 8 with 128 columns a step took 1.0 ms against
 * 0.49 ms now. Other ops follow the tfjs path operation for operation (scale after the product, GELU as
 * x * sigmoid(2c (x + a x^3)), LayerNorm eps 1e-5) so the two engines agree to float rounding.
 */
import type { GPTConfig } from '../gpt/config.ts';
import { GraphBuilder } from './onnx-builder.ts';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;
const LN_EPS = 1e-5;

/** Names of the per-layer cache inputs and outputs. */
export const pastKeysT = (l: number) => `past_kt_${l}`;
export const pastValues = (l: number) => `past_v_${l}`;
export const newKeysT = (l: number) => `kt_${l}`;
export const newValues = (l: number) => `v_${l}`;

interface GraphSpec {
  config: GPTConfig;
  /** Checkpoint-named weights (model/gpt/params.ts), row-major. */
  weights: Map<string, Float32Array>;
  /** Whether the graph takes a past cache (step) or starts from nothing (prefill). */
  withPast: boolean;
}

/** Weight lookup with the shape checked against the config. */
function weightOf(spec: GraphSpec, name: string, dims: number[]): Float32Array {
  const w = spec.weights.get(name);
  if (!w) throw new Error(`weights lack '${name}'`);
  const size = dims.reduce((a, b) => a * b, 1);
  if (w.length !== size) throw new Error(`weight '${name}' has ${w.length} values, expected [${dims}]`);
  return w;
}

/** (R, C) row-major -> (C, R). */
function transposed(w: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = w[i * c + j];
  return out;
}

export function buildGPTGraph(spec: GraphSpec): { bytes: Uint8Array; nodes: number } {
  const { config: c, withPast } = spec;
  const D = c.dModel;
  const H = c.nHeads;
  const hs = D / H;
  const V = c.vocabSize;
  const g = new GraphBuilder();
  const w = (name: string, dims: number[]) => g.weight(name.replaceAll('/', '_'), weightOf(spec, name, dims), dims);

  const ids = g.input('ids', 'int32', ['batch', 'new']);
  const positions = g.input('positions', 'int32', ['batch', 'new']);
  const bias = g.input('bias', 'float32', ['batch', 1, 'new', 'total']);
  const rows = g.input('rows', 'int32', ['rows']);
  const past = Array.from({ length: c.nLayers }, (_, l) =>
    withPast ? { kt: g.input(pastKeysT(l), 'float32', ['batch', H, hs, 'cols']), v: g.input(pastValues(l), 'float32', ['batch', H, 'cols', hs]) } : null,
  );

  const scale = g.scalar('attn_scale', 1 / Math.sqrt(hs));
  const geluOuter = g.scalar('gelu_a2c', 2 * GELU_C * GELU_A);
  const geluInner = g.scalar('gelu_2c', 2 * GELU_C);
  const qkvShape = g.int64('qkv_shape', [0, 0, 3, H, hs]);
  const mergedShape = g.int64('merged_shape', [0, 0, D]);
  const flatShape = g.int64('flat_shape', [-1, D]);
  const part = [0, 1, 2].map((i) => g.weight(`part${i}`, [i], [], 'int32'));
  // Slicing the past's share of the softmax off at C, read from the input's shape.
  const slice = withPast
    ? { cols: g.op1('Shape', [past[0]!.v], { start: 2, end: 3 }), zero: g.int64('zero', [0]), end: g.int64('to_end', [2 ** 31 - 1]), axis: g.int64('last_axis', [3]) }
    : null;

  const layerNorm = (x: string, prefix: string) =>
    g.op1('LayerNormalization', [x, w(`${prefix}/gamma`, [D]), w(`${prefix}/beta`, [D])], { axis: -1, epsilon: LN_EPS });
  const linear = (x: string, wName: string, bName: string, inDim: number, outDim: number) =>
    g.op1('Add', [g.op1('MatMul', [x, w(wName, [inDim, outDim])]), w(bName, [outDim])]);

  const tok = g.op1('Gather', [w('wte', [V, D]), ids], { axis: 0 }); // (B, Tn, D)
  const pos = g.op1('Gather', [w('wpe', [c.context, D]), positions], { axis: 0 }); // (B, Tn, D)
  let x = g.op1('Add', [tok, pos]); // (B, Tn, D)

  for (let l = 0; l < c.nLayers; l++) {
    const p = `h${l}`;
    const qkv = linear(layerNorm(x, `${p}/ln1`), `${p}/attn/w_qkv`, `${p}/attn/b_qkv`, D, 3 * D); // (B, Tn, 3D)
    const split = g.op1('Transpose', [g.op1('Reshape', [qkv, qkvShape])], { perm: [2, 0, 3, 1, 4] }); // (3, B, H, Tn, hs)
    const [q, k, v] = part.map((i) => g.op1('Gather', [split, i], { axis: 0 })); // each (B, H, Tn, hs)
    const keysT = g.output(g.op1('Transpose', [k], { perm: [0, 1, 3, 2] }), newKeysT(l), 'float32', ['batch', H, hs, 'new']); // (B, H, hs, Tn)
    const values = g.output(v, newValues(l), 'float32', ['batch', H, 'new', hs]); // (B, H, Tn, hs)
    const pl = past[l];
    let heads: string; // (B, H, Tn, hs)
    if (pl && slice) {
      const raw = g.op1('Concat', [g.op1('MatMul', [q, pl.kt]), g.op1('MatMul', [q, keysT])], { axis: -1 }); // (B, H, Tn, C+Tn)
      const probs = g.op1('Softmax', [g.op1('Add', [g.op1('Mul', [raw, scale]), bias])], { axis: -1 }); // (B, H, Tn, C+Tn)
      const pastShare = g.op1('Slice', [probs, slice.zero, slice.cols, slice.axis]); // (B, H, Tn, C)
      const newShare = g.op1('Slice', [probs, slice.cols, slice.end, slice.axis]); // (B, H, Tn, Tn)
      heads = g.op1('Add', [g.op1('MatMul', [pastShare, pl.v]), g.op1('MatMul', [newShare, values])]);
    } else {
      const probs = g.op1('Softmax', [g.op1('Add', [g.op1('Mul', [g.op1('MatMul', [q, keysT]), scale]), bias])], { axis: -1 }); // (B, H, Tn, Tn)
      heads = g.op1('MatMul', [probs, values]);
    }
    const merged = g.op1('Reshape', [g.op1('Transpose', [heads], { perm: [0, 2, 1, 3] }), mergedShape]); // (B, Tn, D)
    const x1 = g.op1('Add', [x, linear(merged, `${p}/attn/w_out`, `${p}/attn/b_out`, D, D)]); // (B, Tn, D)
    const f = linear(layerNorm(x1, `${p}/ln2`), `${p}/mlp/w_fc`, `${p}/mlp/b_fc`, D, 4 * D); // (B, Tn, 4D)
    const u = g.op1('Mul', [g.op1('Add', [g.op1('Mul', [g.op1('Mul', [f, f]), geluOuter]), geluInner]), f]); // 2c (f + a f^3)
    const act = g.op1('Mul', [f, g.op1('Sigmoid', [u])]); // (B, Tn, 4D)
    x = g.op1('Add', [x1, linear(act, `${p}/mlp/w_proj`, `${p}/mlp/b_proj`, 4 * D, D)]); // (B, Tn, D)
  }

  const hidden = g.op1('Reshape', [layerNorm(x, 'ln_f'), flatShape]); // (B*Tn, D)
  const picked = g.op1('Gather', [hidden, rows], { axis: 0 }); // (R, D)
  const projection = g.weight('wte_t', transposed(weightOf(spec, 'wte', [V, D]), V, D), [D, V]); // (D, V)
  g.output(g.op1('MatMul', [picked, projection]), 'logits', 'float32', ['rows', V]);
  return { bytes: g.encode(withPast ? 'gpt_step' : 'gpt_prefill'), nodes: g.nodeCount };
}
