/**
 * How a batch of ragged sequences is laid out for the cached forward, shared by every inference
 * engine so they see the same inputs: prompts left-padded to a common length with per-token position
 * ids, and the additive attention mask (causal + key padding) over cached and new columns.
 */
import type { GPTConfig } from './config.ts';

/** The additive bias that closes a key to a query (exp of it is 0 in float32). */
export const MASKED = -1e9;

interface PromptLayout {
  batch: number;
  /** Tn: the longest prompt's length; shorter ones are left-padded. */
  length: number;
  /** (B * Tn) row-major token ids (0 in padding). */
  tokens: Int32Array;
  /** (B * Tn): 1 for real tokens. */
  valid: Uint8Array;
  /** (B * Tn): position of each real token within its prompt (0 in padding). */
  positions: Int32Array;
  /** (B): the position id each sequence's next token gets. */
  nextPos: Int32Array;
}

/** Checks prompts (non-empty, within the window, ids in the vocabulary) and lays them out left-padded. */
export function layoutPrompts(prompts: number[][], config: GPTConfig): PromptLayout {
  if (prompts.length === 0) throw new Error('prefill needs at least one prompt');
  const V = config.vocabSize;
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`prompt ${i} is empty`);
    if (p.length > config.context) throw new Error(`prompt ${i} has ${p.length} tokens; context is ${config.context}`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`prompt ${i} has token id ${id} outside [0, ${V})`);
  });
  const batch = prompts.length;
  const tn = Math.max(...prompts.map((p) => p.length));
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
  return { batch, length: tn, tokens, valid, positions, nextPos: new Int32Array(prompts.map((p) => p.length)) };
}

/** Checks one step's tokens against a cache's batch, window and vocabulary. */
export function checkStepTokens(tokens: number[], cache: { batch: number; nextPos: Int32Array }, config: GPTConfig): void {
  const V = config.vocabSize;
  if (tokens.length !== cache.batch) throw new Error(`step got ${tokens.length} tokens for a batch of ${cache.batch}`);
  for (let b = 0; b < cache.batch; b++) {
    if (cache.nextPos[b] >= config.context) throw new Error(`sequence ${b} is full (context ${config.context})`);
    const id = tokens[b];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`token id ${id} outside [0, ${V})`);
  }
}

/**
 * Which cached+new columns each new token may attend to: real tokens, not in its future.
 * valid: (B * Tn); past: the cache's key validity (B * Tc) or null.
 * Returns the extended key validity (B * (Tc+Tn)) and the additive bias (B * Tn * (Tc+Tn)).
 */
export function chunkMask(
  valid: Uint8Array,
  batch: number,
  past: { keyValid: Uint8Array; length: number } | null,
): { keyValid: Uint8Array; bias: Float32Array } {
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
      for (let j = 0; j < total; j++) bias[row + j] = keyValid[b * total + j] && j <= tc + i ? 0 : MASKED;
    }
  }
  return { keyValid, bias };
}

/** Splits a flat (rows * width) array into per-row copies. */
export function splitRows(data: Float32Array | Int32Array | Uint8Array, rows: number, width: number): Float32Array[] {
  const flat = data instanceof Float32Array ? data : Float32Array.from(data);
  return Array.from({ length: rows }, (_, r) => flat.slice(r * width, (r + 1) * width));
}
