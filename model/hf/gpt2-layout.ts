/**
 * Our GPT is GPT-2's architecture: pre-LayerNorm blocks (epsilon 1e-5), fused q|k|v projection split
 * into heads in order, attention scaled by 1/sqrt(head size), a 4x MLP with the tanh GELU
 * (`gelu_new`), biases everywhere, learned positions, the output projection tied to the token
 * embedding. Our weights are stored (in, out) like GPT-2's Conv1D, so the two differ only in names.
 * This file holds the name map and the config.json both ways.
 */
import { parseGPTConfig, type GPTConfig } from '../gpt/config.ts';
import { HfFormatError } from './hf-tokenizer.ts';

/** Our tensor name -> GPT-2's (as `GPT2LMHeadModel.save_pretrained` writes them). */
export function hfTensorNames(nLayers: number): Map<string, string> {
  const map = new Map<string, string>([
    ['wte', 'transformer.wte.weight'],
    ['wpe', 'transformer.wpe.weight'],
  ]);
  const perLayer: [string, string][] = [
    ['ln1/gamma', 'ln_1.weight'],
    ['ln1/beta', 'ln_1.bias'],
    ['attn/w_qkv', 'attn.c_attn.weight'],
    ['attn/b_qkv', 'attn.c_attn.bias'],
    ['attn/w_out', 'attn.c_proj.weight'],
    ['attn/b_out', 'attn.c_proj.bias'],
    ['ln2/gamma', 'ln_2.weight'],
    ['ln2/beta', 'ln_2.bias'],
    ['mlp/w_fc', 'mlp.c_fc.weight'],
    ['mlp/b_fc', 'mlp.c_fc.bias'],
    ['mlp/w_proj', 'mlp.c_proj.weight'],
    ['mlp/b_proj', 'mlp.c_proj.bias'],
  ];
  for (let i = 0; i < nLayers; i++) for (const [ours, theirs] of perLayer) map.set(`h${i}/${ours}`, `transformer.h.${i}.${theirs}`);
  map.set('ln_f/gamma', 'transformer.ln_f.weight');
  map.set('ln_f/beta', 'transformer.ln_f.bias');
  return map;
}

const LAYER_NORM_EPSILON = 1e-5;
/** GPT-2's name for the tanh approximation our MLP uses; `gelu_pytorch_tanh` is the same function. */
const TANH_GELUS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** config.json for GPT2LMHeadModel. */
export function hfConfigJson(c: GPTConfig, special: { bos: number; eot: number; pad: number }): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.context,
    n_ctx: c.context,
    n_embd: c.dModel,
    n_layer: c.nLayers,
    n_head: c.nHeads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: LAYER_NORM_EPSILON,
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: 0,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    use_cache: true,
    bos_token_id: special.bos,
    eos_token_id: special.eot,
    pad_token_id: special.pad,
    torch_dtype: 'float32',
  };
}

/**
 * Our config from a GPT-2 config.json; throws HfFormatError naming what is not GPT-2's architecture
 * as ours runs it. `vocabSize` is the tokenizer's (after any added chat tokens).
 */
export function configFromHf(json: unknown, vocabSize: number): GPTConfig {
  const j = (json ?? {}) as Record<string, any>;
  const fail = (what: string): never => {
    throw new HfFormatError(`config.json: ${what}`);
  };
  const archs = Array.isArray(j.architectures) ? j.architectures : [];
  if (j.model_type !== 'gpt2') fail(`model_type is ${JSON.stringify(j.model_type)}, expected "gpt2" (architecture ${JSON.stringify(archs)})`);
  if (archs.length > 0 && !archs.some((a: unknown) => a === 'GPT2LMHeadModel' || a === 'GPT2Model')) fail(`architectures ${JSON.stringify(archs)} has no GPT2LMHeadModel`);
  const activation = j.activation_function ?? 'gelu_new';
  if (!TANH_GELUS.includes(activation)) fail(`activation_function is ${JSON.stringify(activation)}; this model computes the tanh GELU (gelu_new)`);
  const eps = j.layer_norm_epsilon ?? LAYER_NORM_EPSILON;
  if (eps !== LAYER_NORM_EPSILON) fail(`layer_norm_epsilon is ${eps}; this model uses ${LAYER_NORM_EPSILON}`);
  const d = j.n_embd;
  if (j.n_inner !== null && j.n_inner !== undefined && j.n_inner !== 4 * d) fail(`n_inner is ${j.n_inner}; this model's MLP is 4 * n_embd = ${4 * d}`);
  if (j.scale_attn_weights === false) fail('scale_attn_weights is false; this model scales attention by 1/sqrt(head size)');
  if (j.scale_attn_by_inverse_layer_idx === true) fail('scale_attn_by_inverse_layer_idx is true; this model does not scale by layer');
  if (j.tie_word_embeddings === false) fail('tie_word_embeddings is false; this model ties the output projection to the token embedding');
  if (j.add_cross_attention === true) fail('add_cross_attention is true; this model is decoder-only');
  try {
    return parseGPTConfig({
      vocabSize,
      context: j.n_positions ?? j.n_ctx,
      dModel: d,
      nLayers: j.n_layer,
      nHeads: j.n_head,
      dropout: 0,
      initSeed: 1,
    });
  } catch (err) {
    return fail((err as Error).message);
  }
}
