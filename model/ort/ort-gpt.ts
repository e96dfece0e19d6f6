/**
 * GPT generation on ONNX Runtime: the graph of `gpt-graph.ts` built from a config and weights, run
 * by an InferenceSession, behind the same prefill/step interface as the tfjs `GPT`. Prefill (no past,
 * Tn = the longest prompt) and step (a past of Tc columns, Tn = 1) are two sessions of the same
 * weights by default: the prefill graph has no zero-length past inputs to concatenate, and each
 * session's plan stays fixed to one kind of call. `graphs: 'one'` runs both through the step graph
 * with an empty past (kept for the measurement in docs/perf-inference.md).
 */
import * as ort from 'onnxruntime-node';
import { checkStepTokens, chunkMask, layoutPrompts, splitRows } from '../gpt/batch-layout.ts';
import type { GPTConfig } from '../gpt/config.ts';
import type { DecodeStep, InferenceModel } from '../inference/inference-model.ts';
import { countOrtModel } from './live-sessions.ts';
import { buildGPTGraph, pastKey, pastValue, presentKey, presentValue } from './gpt-graph.ts';
import { OrtKVCache, type OrtLayerCache } from './ort-kv-cache.ts';

const ORT_PROVIDERS = ['cpu', 'cuda'] as const;
type OrtProvider = (typeof ORT_PROVIDERS)[number];

interface OrtOptions {
  /** Intra-op threads per session (default 1: the engine shares the machine with serving and training). */
  threads?: number;
  provider?: OrtProvider;
  /** Two sessions (prefill without a past, step with one) or one step graph for both. */
  graphs?: 'one' | 'two';
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
    let prefillSession = stepSession;
    if ((opts.graphs ?? 'two') === 'two') {
      try {
        prefillSession = await ort.InferenceSession.create(buildGPTGraph({ config, weights, withPast: false }).bytes, sessionOptions);
      } catch (err) {
        await stepSession.release();
        throw err;
      }
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

  /** One forward of a (B, Tn) chunk; returns logits of `rows` and the extended per-layer cache. */
  private async run(
    tokens: Int32Array,
    positions: Int32Array,
    bias: Float32Array,
    batch: number,
    rows: Int32Array,
    past: { layers: OrtLayerCache[]; length: number } | null,
  ): Promise<{ logits: Float32Array; layers: OrtLayerCache[]; total: number }> {
    this.assertLive();
    const tn = tokens.length / batch;
    const tc = past ? past.length : 0;
    const total = tc + tn;
    const H = this.nHeads;
    const hs = this.headSize;
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor('int32', tokens, [batch, tn]),
      positions: new ort.Tensor('int32', positions, [batch, tn]),
      bias: new ort.Tensor('float32', bias, [batch, 1, tn, total]),
      rows: new ort.Tensor('int32', rows, [rows.length]),
    };
    const session = past || this.prefillSession === this.stepSession ? this.stepSession : this.prefillSession;
    if (session === this.stepSession) {
      for (let l = 0; l < this.config.nLayers; l++) {
        feeds[pastKey(l)] = new ort.Tensor('float32', past ? past.layers[l].k : new Float32Array(0), [batch, H, tc, hs]);
        feeds[pastValue(l)] = new ort.Tensor('float32', past ? past.layers[l].v : new Float32Array(0), [batch, H, tc, hs]);
      }
    }
    const out = await session.run(feeds);
    const layers = Array.from({ length: this.config.nLayers }, (_, l) => ({
      k: out[presentKey(l)].data as Float32Array,
      v: out[presentValue(l)].data as Float32Array,
    }));
    return { logits: out.logits.data as Float32Array, layers, total };
  }

  async prefill(prompts: number[][], opts: { allLogits?: boolean } = {}): Promise<OrtStepResult & { all?: Float32Array[][] }> {
    const V = this.config.vocabSize;
    const { batch, length: tn, tokens, valid, positions, nextPos } = layoutPrompts(prompts, this.config);
    const { keyValid, bias } = chunkMask(valid, batch, null);
    const rows = opts.allLogits
      ? Int32Array.from({ length: batch * tn }, (_, i) => i)
      : Int32Array.from({ length: batch }, (_, b) => b * tn + tn - 1);
    const r = await this.run(tokens, positions, bias, batch, rows, null);
    const cache = new OrtKVCache(r.layers, keyValid, nextPos, batch, tn, this.nHeads, this.headSize);
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
    const { keyValid, bias } = chunkMask(new Uint8Array(batch).fill(1), batch, cache);
    const rows = Int32Array.from({ length: batch }, (_, b) => b);
    const r = await this.run(Int32Array.from(tokens), cache.nextPos, bias, batch, rows, cache);
    const nextPos = Int32Array.from(cache.nextPos, (p) => p + 1);
    cache.dispose();
    const next = new OrtKVCache(r.layers, keyValid, nextPos, batch, r.total, this.nHeads, this.headSize);
    return { logits: splitRows(r.logits, batch, this.config.vocabSize), cache: next };
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
    if (this.prefillSession !== this.stepSession) void this.prefillSession.release();
  }
}
