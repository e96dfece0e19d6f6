/**
 * Which engine runs inference in this process: ONNX Runtime (`ort`, the default where it loads) or the
 * tfjs model itself (`tfjs`, also the training engine). Chosen once and logged. `INFERENCE_ENGINE`
 * forces one: a forced engine that cannot start is an error, never a silent fallback. For ort,
 * `ORT_PROVIDER=cpu|cuda` picks the execution provider (cuda needs onnxruntime-node's CUDA binaries,
 * see docs/inference.md) and `ORT_THREADS` the intra-op threads per session.
 *
 * `inferenceModel(gpt)` gives the chosen engine's view of a loaded tfjs model: the model itself for
 * tfjs, or an ORT session built from a copy of its current weights (the caller still owns `gpt`).
 */
import type { GPT } from '../gpt/gpt.ts';
import type { InferenceModel } from './inference-model.ts';

const INFERENCE_ENGINES = ['ort', 'tfjs'] as const;
type InferenceEngineName = (typeof INFERENCE_ENGINES)[number];

export interface InferenceEngineInfo {
  name: InferenceEngineName;
  reason: 'forced' | 'auto';
  /** ort: execution provider, intra-op threads and package version. */
  provider?: string;
  threads?: number;
  version?: string;
  /** auto only: why ort did not start, when it did not. */
  skipped?: string;
}

interface OrtSettings {
  provider: 'cpu' | 'cuda';
  threads: number;
}

function parseEngine(value: string | undefined): InferenceEngineName | undefined {
  if (value === undefined || value === '') return undefined;
  if ((INFERENCE_ENGINES as readonly string[]).includes(value)) return value as InferenceEngineName;
  throw new Error(`INFERENCE_ENGINE=${value} is not one of ${INFERENCE_ENGINES.join(', ')}`);
}

/** ORT_PROVIDER and ORT_THREADS, validated. */
function ortSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): OrtSettings {
  const provider = env.ORT_PROVIDER || 'cpu';
  if (provider !== 'cpu' && provider !== 'cuda') throw new Error(`ORT_PROVIDER=${provider} is not one of cpu, cuda`);
  const threadsText = env.ORT_THREADS || '1';
  const threads = Number(threadsText);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`ORT_THREADS=${threadsText} must be an integer in [1, 64]`);
  return { provider, threads };
}

let chosen: Promise<InferenceEngineInfo> | null = null;
let chosenInfo: InferenceEngineInfo | null = null;

/** Loads onnxruntime-node and runs a one-node graph on the chosen provider, so that a broken install fails here. */
async function startOrt(settings: OrtSettings): Promise<string> {
  const ort = await import('onnxruntime-node');
  const { GraphBuilder } = await import('../ort/onnx-builder.ts');
  const g = new GraphBuilder();
  g.output(g.op1('Relu', [g.input('x', 'float32', [2])]), 'y', 'float32', [2]);
  const session = await ort.InferenceSession.create(g.encode('probe'), { executionProviders: [settings.provider], intraOpNumThreads: settings.threads });
  try {
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.of(-1, 2), [2]) });
    if ((y.data as Float32Array)[1] !== 2) throw new Error('probe graph gave a wrong result');
  } finally {
    await session.release();
  }
  return ort.env.versions.node ?? 'unknown';
}

/**
 * Chooses the inference engine once per process (later calls return the same choice; a different
 * forced one is an error).
 */
export function initInference(
  opts: { engine?: InferenceEngineName; log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<InferenceEngineInfo> {
  const env = opts.env ?? process.env;
  let forced: InferenceEngineName | undefined;
  try {
    forced = opts.engine ?? parseEngine(env.INFERENCE_ENGINE);
  } catch (err) {
    return Promise.reject(err);
  }
  if (chosen) {
    return chosen.then((info) => {
      if (forced && forced !== info.name) throw new Error(`inference engine already started as ${info.name}; cannot switch to ${forced}`);
      return info;
    });
  }
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  chosen = (async (): Promise<InferenceEngineInfo> => {
    const reason = forced ? 'forced' : 'auto';
    let skipped: string | undefined;
    if (forced !== 'tfjs') {
      try {
        const settings = ortSettingsFromEnv(env);
        const version = await startOrt(settings);
        const info: InferenceEngineInfo = { name: 'ort', reason, ...settings, version };
        log(`[engine] inference on onnxruntime-node ${version}, provider ${settings.provider}, ${settings.threads} thread(s) (${reason})`);
        return (chosenInfo = info);
      } catch (err) {
        const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
        if (forced === 'ort') throw new Error(`inference engine 'ort' could not start: ${message}`);
        skipped = message;
      }
    }
    const info: InferenceEngineInfo = { name: 'tfjs', reason, ...(skipped ? { skipped } : {}) };
    log(`[engine] inference on tfjs (${reason})${skipped ? `; ort did not start: ${skipped}` : ''}`);
    return (chosenInfo = info);
  })();
  chosen.catch(() => {
    chosen = null;
  });
  return chosen;
}

/** The engine chosen so far, or null before `initInference` finished. */
export function inferenceEngineInfo(): InferenceEngineInfo | null {
  return chosenInfo;
}

/** Checkpoint-named weights of a tfjs model, copied out as Float32Arrays. */
async function weightArrays(gpt: GPT): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of gpt.namedWeights()) out.set(name, Float32Array.from(await v.data()));
  return out;
}

/**
 * The chosen engine's inference model for `gpt`'s current weights. For ort it is a new session (its
 * own copy of the weights: later training of `gpt` does not change it; dispose it when done); for
 * tfjs it is `gpt` itself.
 */
export async function inferenceModel(gpt: GPT, engine?: InferenceEngineName, ort: Partial<OrtSettings> = {}): Promise<InferenceModel> {
  const name = engine ?? (await initInference()).name;
  if (name === 'tfjs') return gpt;
  // Loaded on first use, so that a process on tfjs never loads the native runtime.
  const { OrtGPT } = await import('../ort/ort-gpt.ts');
  return OrtGPT.create(gpt.config, await weightArrays(gpt), { ...ortSettingsFromEnv(), ...ort });
}

/**
 * Runs `fn` on the chosen engine's inference model of `gpt`'s current weights, and releases that
 * model afterwards (an ORT session; never `gpt` itself).
 */
export async function withInferenceModel<T>(gpt: GPT, fn: (model: InferenceModel) => Promise<T>): Promise<T> {
  const model = await inferenceModel(gpt);
  try {
    return await fn(model);
  } finally {
    if (model !== gpt) model.dispose();
  }
}
