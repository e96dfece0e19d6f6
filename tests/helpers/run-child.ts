/**
 * Runs a command-line entry point of this project as a child process, the way a user would, and
 * collects what it printed. It never rejects on a non-zero exit: the caller asserts on `code`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunChildOptions {
  /** Set for the child on top of this process's environment; `undefined` removes an inherited one. */
  env?: Record<string, string | undefined>;
  /** Killed (SIGKILL) after this long; its output so far is returned with a null code. */
  limitMs: number;
  /** Run in its own process group and kill the whole group at the limit (npm starts node under it). */
  ownGroup?: boolean;
}

/** Runs `command args` in the repository root. */
export function runChild(command: string, args: string[], opts: RunChildOptions): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownGroup === true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const kill = () => {
      if (opts.ownGroup && child.pid) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    };
    const timer = setTimeout(kill, opts.limitMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** Runs `node --import tsx <script> ...args` (a TypeScript entry point, path relative to the root). */
export function runTs(script: string, args: string[], opts: RunChildOptions): Promise<Ran> {
  return runChild(process.execPath, ['--import', 'tsx', script, ...args], opts);
}

/** `undefined` for each name: the child must not inherit these variables from the test runner. */
export function without(...names: string[]): Record<string, undefined> {
  return Object.fromEntries(names.map((n) => [n, undefined]));
}
