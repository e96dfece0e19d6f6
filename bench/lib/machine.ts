/** The machine a benchmark ran on, so that figures from different machines are not compared blindly. */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import type { EngineInfo } from '../../model/backend.ts';
import { mib, round } from './stats.ts';

export interface MachineInfo {
  cores: number;
  cpu_model: string;
  total_memory_mb: number;
  node: string;
  platform: string;
  arch: string;
  /** 1-minute load average when the run started: a busy machine lowers every figure. */
  loadavg_1m_at_start: number;
  tfjs_backend: { name: string; tf_backend: string; package: string; simd: boolean | null } | null;
}

export function machineInfo(): MachineInfo {
  const cpu = cpus()[0];
  return {
    cores: availableParallelism(),
    cpu_model: cpu?.model.trim() || 'unknown',
    total_memory_mb: mib(totalmem()),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    loadavg_1m_at_start: round(loadavg()[0], 2),
    tfjs_backend: null,
  };
}

export function backendInfo(engine: EngineInfo): NonNullable<MachineInfo['tfjs_backend']> {
  return { name: engine.name, tf_backend: engine.tfBackend, package: engine.package, simd: engine.simd ?? null };
}
