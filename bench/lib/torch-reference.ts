/**
 * The PyTorch eager reference of `bench:model --torch`: runs bench/torch/decode.py (the same GPT and
 * the same decode measurements in PyTorch) once per intra-op thread count and collects its JSON lines.
 * A missing python3 or torch, or a failed run, is reported as a reason, never thrown: the reference
 * is a comparison, not the bench's own measurement.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GPTConfig } from '../../model/gpt/config.ts';

const SCRIPT = fileURLToPath(new URL('../torch/decode.py', import.meta.url));
// Debian's python3-torch installs into the system interpreter, /usr/bin/python3; the `python3` first
// on PATH may be another one (pyenv, a venv) without torch, so the system one is preferred.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const THREADS = [1, 2];
// Generous: gpt2-sized no-cache decode on a loaded 2-core machine takes minutes.
const TIMEOUT_MS = 30 * 60_000;

/** One engine's decode figures under bench:model's key names (tfjs's, and each PyTorch thread count's). */
export interface EngineDecodeFigures {
  decode_tokens_per_s: number;
  decode_nocache_tokens_per_s: number;
  decode_batch8_tokens_per_s: number;
  decode_cpu_tokens_per_s: number;
  decode_batch8_cpu_tokens_per_s: number;
  prefill_16_ms: number;
  prefill_100_ms: number;
}

/** decode.py's figures: an engine's, plus the lengths it measured with. */
interface TorchDecodeFigures extends EngineDecodeFigures {
  decode_prompt_tokens: number;
  decode_steps: number;
  decode_batch8_prompt_tokens: [number, number];
  decode_batch8_steps: number;
}

export interface TorchReference {
  version: string;
  /** The interpreter that ran it. */
  python: string;
  /** The BLAS library torch used (Debian: the reference libblas3 or OpenBLAS, by update-alternatives); null if unknown. */
  blas: string | null;
  by_threads: Record<string, TorchDecodeFigures>;
}

/** Runs decode.py; its progress goes to our stderr, and the last stderr line explains a failure. */
function runScript(args: string[]): Promise<{ stdout: string; failure: string | null }> {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT_MS });
    let stdout = '';
    let stderrTail = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderrTail = (stderrTail + chunk.toString()).slice(-2000);
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ stdout, failure: err.code === 'ENOENT' ? `${PYTHON} not found` : `${PYTHON} did not start: ${err.message}` }),
    );
    child.on('close', (code, signal) => {
      if (code === 0) return resolve({ stdout, failure: null });
      const last = stderrTail.trim().split('\n').at(-1) ?? '';
      resolve({ stdout, failure: `${PYTHON} ${SCRIPT} exited with ${signal ?? `code ${code}`}${last ? `: ${last}` : ''}` });
    });
  });
}

/** decode.py at 1 and 2 threads; null and the reason when any run could not be made. */
export async function measureTorch(cfg: GPTConfig, runs: number, log: (line: string) => void): Promise<{ reference: TorchReference | null; reason?: string }> {
  const byThreads: Record<string, TorchDecodeFigures> = {};
  let version = '';
  let blas: string | null = null;
  for (const threads of THREADS) {
    log(`pytorch reference, ${threads} thread(s), ${PYTHON}`);
    const { stdout, failure } = await runScript(['--config', JSON.stringify(cfg), '--threads', String(threads), '--runs', String(runs)]);
    if (failure) return { reference: null, reason: `pytorch reference not measured: ${failure}` };
    try {
      // Besides the figures, the line names the versions, thread count and runs, held once in the reference.
      const { torch, blas: lib, python: _python, threads: _threads, runs: _runs, ...figures } = JSON.parse(stdout.trimEnd().split('\n').at(-1) ?? '');
      version = torch;
      blas = lib ?? null;
      byThreads[threads] = figures as TorchDecodeFigures;
    } catch {
      return { reference: null, reason: `pytorch reference not measured: no JSON line from ${SCRIPT}` };
    }
  }
  return { reference: { version, python: PYTHON, blas, by_threads: byThreads } };
}
