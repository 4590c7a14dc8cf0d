import { ERROR_CODES, type ErrorCode } from './protocol/codes.ts';

/**
 * An error with a stable protocol code. Everything that reaches a client is one of these;
 * anything else is reported as `internal` with a generic message (never a stack trace).
 */
export class RtError extends Error {
  override readonly name = 'RtError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Maps any thrown value to a code and a message safe to show a client. */
export function toClientError(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof RtError) return { code: err.code, message: err.message };
  return { code: 'internal', message: 'internal error' };
}

/** An `error` frame, serialized by hand because it is made on hot paths; `room` when it concerns one room. */
export function errorFrame(id: string | number | undefined, code: ErrorCode, message: string, room?: string): string {
  return `{"type":"error"${id === undefined ? '' : `,"id":${JSON.stringify(id)}`},"code":"${code}","message":${JSON.stringify(message)}${room === undefined ? '' : `,"room":${JSON.stringify(room)}`}}`;
}

/**
 * An `overloaded` error frame with its retry hint (hot path under overload: built by hand). The hint
 * comes before the message so that a client reading only a frame's first bytes finds it.
 */
export function overloadedFrame(id: string | number | undefined, retryAfterMs: number, message: string): string {
  return `{"type":"error"${id === undefined ? '' : `,"id":${JSON.stringify(id)}`},"code":"overloaded","retryAfterMs":${Math.max(0, Math.round(retryAfterMs))},"message":${JSON.stringify(message)}}`;
}
