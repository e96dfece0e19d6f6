/**
 * GPT generation on ONNX Runtime: the graphs of `gpt-graph.ts` built from a config and weights, run
 * by two InferenceSessions of the same weights, behind the same prefill/step interface as the tfjs
 * `GPT`: prefill (no past, Tn = the longest prompt) and step (the cache's buffers read in place,
 * Tn = 1). Each session's plan stays fixed to one kind of call.
 */
import * as ort from 'onnxruntime-node';
import { checkStepTokens, chunkMask, layoutPrompts, splitRows } from '../gpt/batch-layout.ts';
import type { GPTConfig } from '../gpt/config.ts';
import type { DecodeStep, InferenceModel } from '../inference/inference-model.ts';
import { countOrtModel } from './live-sessions.ts';
import { CacheStore, columnsFor, type LayerBuffers } from './cache-store.ts';
import { buildGPTGraph, newKeysT, newValues, pastKeysT, pastValues } from './gpt-graph.ts';
import { OrtKVCache } from './ort-kv-cache.ts';

const ORT_PROVIDERS = ['cpu', 'cuda'] as const;
type OrtProvider = (typeof ORT_PROVIDERS)[number];

interface OrtOptions {
  /** Intra-op threads per session (default 1: the engine shares the machine with serving and training). */
  threads?: number;
  provider?: OrtProvider;
}

interface OrtStepResult extends DecodeStep {
  cache: OrtKVCache;
}

export class OrtGPT implements InferenceModel {
  private disposed = false;

  private constructor(
    readonly config: GPTConfig,
    private readonly prefillSession: ort.InferenceSession,
    private readonly stepSession: ort.InferenceSession,
    /** Node count of the step graph. */
    readonly graphNodes: number,
  ) {
    countOrtModel(1);
  }

  /** Builds the graphs from checkpoint-named weights and starts the sessions. */
  static async create(config: GPTConfig, weights: Map<string, Float32Array>, opts: OrtOptions = {}): Promise<OrtGPT> {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`ORT threads must be an integer in [1, 64] (got ${threads})`);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [opts.provider ?? 'cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Idle pool threads would otherwise spin between runs, taking a core from the server's main
      // thread and from training (only matters with threads > 1).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
    const step = buildGPTGraph({ config, weights, withPast: true });
    const stepSession = await ort.InferenceSession.create(step.bytes, sessionOptions);
    let prefillSession: ort.InferenceSession;
    try {
      prefillSession = await ort.InferenceSession.create(buildGPTGraph({ config, weights, withPast: false }).bytes, sessionOptions);
    } catch (err) {
      await stepSession.release();
      throw err;
    }
    return new OrtGPT(config, prefillSession, stepSession, step.nodes);
  }

  private get nHeads(): number {
    return this.config.nHeads;
  }

  private get headSize(): number {
    return this.config.dModel / this.config.nHeads;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('OrtGPT used after dispose');
  }

  /** One forward of a (B, Tn) chunk; returns logits of `rows` and each layer's new keys (transposed) and values. */
  private async run(
    tokens: Int32Array,
    positions: Int32Array,
    bias: Float32Array,
    batch: number,
    rows: Int32Array,
    past: { layers: LayerBuffers[]; cols: number } | null,
  ): Promise<{ logits: Float32Array; fresh: LayerBuffers[] }> {
    this.assertLive();
    const tn = tokens.length / batch;
    const H = this.nHeads;
    const hs = this.headSize;
    const total = (past ? past.cols : 0) + tn;
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor('int32', tokens, [batch, tn]),
      positions: new ort.Tensor('int32', positions, [batch, tn]),
      bias: new ort.Tensor('float32', bias, [batch, 1, tn, total]),
      rows: new ort.Tensor('int32', rows, [rows.length]),
    };
    if (past) {
      past.layers.forEach((l, i) => {
        feeds[pastKeysT(i)] = new ort.Tensor('float32', l.kt, [batch, H, hs, past.cols]);
        feeds[pastValues(i)] = new ort.Tensor('float32', l.v, [batch, H, past.cols, hs]);
      });
    }
    const out = await (past ? this.stepSession : this.prefillSession).run(feeds);
    const fresh = Array.from({ length: this.config.nLayers }, (_, l) => ({
      kt: out[newKeysT(l)].data as Float32Array,
      v: out[newValues(l)].data as Float32Array,
    }));
    return { logits: out.logits.data as Float32Array, fresh };
  }

  async prefill(prompts: number[][], opts: { allLogits?: boolean } = {}): Promise<OrtStepResult & { all?: Float32Array[][] }> {
    const V = this.config.vocabSize;
    const { batch, length: tn, tokens, valid, positions, nextPos } = layoutPrompts(prompts, this.config);
    const { keyValid, bias } = chunkMask(valid, batch, null);
    const rows = opts.allLogits
      ? Int32Array.from({ length: batch * tn }, (_, i) => i)
      : Int32Array.from({ length: batch }, (_, b) => b * tn + tn - 1);
    const r = await this.run(tokens, positions, bias, batch, rows, null);
    const store = CacheStore.alloc(this.config.nLayers, batch, columnsFor(tn + 1, this.config.context), this.nHeads, this.headSize);
    r.fresh.forEach((l, i) => store.writeColumns(i, l.kt, l.v, batch, tn, 0));
    const cache = new OrtKVCache(store, keyValid, nextPos, batch, tn, this.config.context);
    if (!opts.allLogits) return { logits: splitRows(r.logits, batch, V), cache };
    const flat = splitRows(r.logits, batch * tn, V);
    const all = prompts.map((p, b) => flat.slice(b * tn + tn - p.length, (b + 1) * tn));
    return { logits: all.map((rowsOfPrompt) => rowsOfPrompt[rowsOfPrompt.length - 1]), cache, all };
  }

  async step(cache: OrtKVCache, tokens: number[]): Promise<OrtStepResult> {
    if (!(cache instanceof OrtKVCache)) throw new Error('step got a cache made by another engine');
    cache.assertLive();
    checkStepTokens(tokens, cache, this.config);
    const batch = cache.batch;
    cache.reserveNextColumn();
    const store = cache.store;
    const rows = Int32Array.from({ length: batch }, (_, b) => b);
    const r = await this.run(Int32Array.from(tokens), cache.nextPos, cache.stepBias(), batch, rows, { layers: store.views(batch), cols: store.colCap });
    r.fresh.forEach((l, i) => store.writeColumns(i, l.kt, l.v, batch, 1, cache.length));
    // Views, not copies: the output array is this step's alone, and rows are disjoint.
    const V = this.config.vocabSize;
    const logits = Array.from({ length: batch }, (_, b) => r.logits.subarray(b * V, (b + 1) * V));
    return { logits, cache: cache.appended() };
  }

  concatRows(caches: OrtKVCache[]): OrtKVCache {
    return OrtKVCache.concatRows(caches);
  }

  /** Releases the sessions (native memory). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    countOrtModel(-1);
    void this.stepSession.release();
    void this.prefillSession.release();
  }
}
