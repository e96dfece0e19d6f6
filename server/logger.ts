// Structured logs (pino, JSON lines on stdout). Requests and sockets log through child loggers that
// carry their request id or connection id.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
