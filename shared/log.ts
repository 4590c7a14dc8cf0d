import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs, one event a line. Secrets never go in: callers log ids, not tokens; the redaction
 * paths are a second line of defence.
 */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: ['token', 'ticket', 'apiKey', 'authorization', '*.token', '*.ticket', '*.authorization'], censor: '[redacted]' },
  });
}
