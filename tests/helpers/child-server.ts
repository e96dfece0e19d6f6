/**
 * The server as a separate process (`node --import tsx server/main.ts`), for tests that kill it: a
 * free loopback port chosen here and kept across restarts, readiness taken from its "listening" log
 * line, its output kept for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A port free on 127.0.0.1 right now (the OS picks it; closed again before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface ChildServer {
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  /** Everything it printed (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGKILL: no shutdown code runs. Resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the graceful exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

/**
 * Starts `server/main.ts` on `port` with `env` on top of a clean environment (no DATABASE_URL unless
 * given, no test-runner variables); resolves when it listens, rejects if it exits first.
 */
export async function startChildServer(port: number, env: Record<string, string>, { timeoutMs = 90_000 } = {}): Promise<ChildServer> {
  const base = { ...process.env };
  delete base.DATABASE_URL;
  delete base.NODE_TEST_CONTEXT;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: { ...base, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', TRAINER: 'off', SHUTDOWN_GRACE_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const child: ChildServer = {
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    proc,
    output: () => out,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    stop: async (ms = 30_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the server did not listen within ${timeoutMs} ms:\n${out.slice(-4000)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk;
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        let msg: string | undefined;
        try {
          msg = (JSON.parse(line) as { msg?: string }).msg;
        } catch {
          continue;
        }
        if (msg?.startsWith('listening on ')) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (chunk: Buffer) => (out += chunk));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (code ${code}) before listening:\n${out.slice(-4000)}`));
    });
  });
  return child;
}
