import { pino, type DestinationStream, type Logger } from 'pino';

export type { DestinationStream, Logger };

/**
 * JSON logs, one event a line. Secrets never go in: callers log ids, not tokens; the redaction
 * paths are a second line of defence.
 */
export function createLogger(name: string, level = 'info', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: ['token', 'ticket', 'apiKey', 'authorization', '*.token', '*.ticket', '*.authorization'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
