/**
 * Engine selection: which TensorFlow.js backend runs the model in this process.
 *
 * Chosen once, in order of speed: the CUDA build (`@tensorflow/tfjs-node-gpu`), the native CPU build
 * (`@tensorflow/tfjs-node`), then WebAssembly with SIMD (`@tensorflow/tfjs-backend-wasm`). The native
 * packages are optional (their install downloads libtensorflow), so they are loaded by name at run time.
 * `TFJS_BACKEND=gpu|node|wasm|cpu` forces one; a forced backend that cannot start is an error, never a
 * silent fallback. The pure-JS `cpu` backend is ~40x slower and is only used when asked for by name.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core registers no gradients by itself, and its ESM build with them cannot be loaded by Node; the
// union package's Node bundle registers them all (in a registry global to the process).
import '@tensorflow/tfjs';

export const BACKEND_NAMES = ['gpu', 'node', 'wasm', 'cpu'] as const;
type BackendName = (typeof BACKEND_NAMES)[number];

export interface EngineInfo {
  /** Our name for the engine. */
  name: BackendName;
  /** tfjs's name for the registered backend (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** The npm package that provides it. */
  package: string;
  /** How it was chosen: forced by `TFJS_BACKEND` / option, or the first that loaded. */
  reason: 'forced' | 'auto';
  /** Engines tried before this one, with why each did not load. */
  skipped: { name: BackendName; error: string }[];
  /** wasm only: whether the SIMD build is in use. */
  simd?: boolean;
}

const PACKAGES: Record<BackendName, string> = {
  gpu: '@tensorflow/tfjs-node-gpu',
  node: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

let chosen: Promise<EngineInfo> | null = null;
let chosenInfo: EngineInfo | null = null;

/** Parses `TFJS_BACKEND`; an unknown value is an error naming the allowed ones. */
export function backendFromEnv(value = process.env.TFJS_BACKEND): BackendName | undefined {
  if (value === undefined || value === '') return undefined;
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`TFJS_BACKEND=${value} is not one of ${BACKEND_NAMES.join(', ')}`);
}

async function tryStart(name: BackendName): Promise<{ tfBackend: string; simd?: boolean }> {
  // The package name is a variable so that TypeScript does not require the optional packages.
  const pkg: string = PACKAGES[name];
  await import(pkg);
  const tfBackend = name === 'gpu' || name === 'node' ? 'tensorflow' : name;
  const ok = await tf.setBackend(tfBackend);
  await tf.ready();
  // setBackend can report false and leave another backend active: check what is really running.
  if (!ok || tf.getBackend() !== tfBackend) {
    throw new Error(`tf.setBackend('${tfBackend}') failed; active backend is ${tf.getBackend()}`);
  }
  if (name === 'wasm') {
    const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    return { tfBackend, simd };
  }
  return { tfBackend };
}

/**
 * Starts the engine once per process and returns what was chosen. Later calls return the same
 * choice (a different forced backend on a later call is an error: the process has one engine).
 */
export function initEngine(
  opts: { backend?: BackendName; log?: (line: string) => void } = {},
): Promise<EngineInfo> {
  const forced = opts.backend ?? backendFromEnv();
  if (chosen) {
    return chosen.then((info) => {
      if (forced && forced !== info.name) {
        throw new Error(`engine already started as ${info.name}; cannot switch to ${forced}`);
      }
      return info;
    });
  }
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  chosen = (async () => {
    const order: BackendName[] = forced ? [forced] : ['gpu', 'node', 'wasm'];
    const skipped: EngineInfo['skipped'] = [];
    for (const name of order) {
      try {
        const started = await tryStart(name);
        const info: EngineInfo = {
          name,
          package: PACKAGES[name],
          reason: forced ? 'forced' : 'auto',
          skipped,
          ...started,
        };
        const extra = info.simd === undefined ? '' : ` simd=${info.simd}`;
        const warn = name === 'cpu' ? ' (pure JS, ~40x slower than wasm)' : '';
        log(`[engine] tfjs backend ${info.tfBackend} via ${info.package} (${info.reason})${extra}${warn}`);
        chosenInfo = info;
        return info;
      } catch (err) {
        const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
        if (forced) throw new Error(`TFJS backend '${name}' could not start: ${message}`);
        skipped.push({ name, error: message });
      }
    }
    throw new Error(`no TensorFlow.js backend could start: ${skipped.map((s) => `${s.name}: ${s.error}`).join('; ')}`);
  })();
  chosen.catch(() => {
    chosen = null;
  });
  return chosen;
}

/** The engine chosen so far, or null before `initEngine` finished (for /health). */
export function engineInfo(): EngineInfo | null {
  return chosenInfo;
}
