/**
 * HTTP plumbing for uWebSockets.js responses: JSON answers in the protocol's error format, bodies
 * read with a size limit, and an `aborted` flag, because a uWS response must not be touched after
 * the client went away (every handler that awaits registers `onAborted` first).
 */
import type * as UWS from 'uWebSockets.js';
import { RtError } from '../shared/errors.ts';
import { ERROR_CODES, type ErrorCode } from '../shared/protocol/codes.ts';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 415: 'Unsupported Media Type',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

export type RouteHandler = (res: UWS.HttpResponse, req: UWS.HttpRequest) => void;

/** Where handlers are registered: the uWS app, through the gateway's boundary that answers 500 on a throw. */
export interface Routes {
  get(pattern: string, handler: RouteHandler): unknown;
  post(pattern: string, handler: RouteHandler): unknown;
  any(pattern: string, handler: RouteHandler): unknown;
}

/** Answers 500 `internal`, unless the response was already ended or aborted (then there is no one to tell). */
export function answerInternal(res: UWS.HttpResponse): void {
  try {
    res.cork(() => res.writeStatus('500 Internal Server Error').writeHeader('content-type', 'application/json').end('{"error":{"code":"internal","message":"internal error"}}'));
  } catch {
    // uWS throws on a response that is already answered or aborted.
  }
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Unknown'}`;
}

/** One HTTP exchange whose answer may come after an await. */
export class Exchange {
  aborted = false;
  constructor(readonly res: UWS.HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (this.aborted) return;
    this.aborted = true;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json');
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(text);
    });
  }

  error(code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
    this.json(ERROR_CODES[code].status, { error: { code, message } }, headers);
  }

  /** Answers an error thrown by a handler: RtError as itself, anything else as `internal`. */
  fail(err: unknown): void {
    if (err instanceof RtError) this.error(err.code, err.message);
    else this.error('internal', 'internal error');
  }

  /** Reads the body, rejecting with `too_large` past `limit` bytes (without buffering the rest). */
  body(limit: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      this.res.onData((chunk, isLast) => {
        if (done) return;
        size += chunk.byteLength;
        if (size > limit) {
          done = true;
          reject(new RtError('too_large', `request body larger than ${limit} bytes`));
          return;
        }
        // The chunk is only valid during this callback: copy it.
        chunks.push(Buffer.from(new Uint8Array(chunk)));
        if (isLast) {
          done = true;
          resolve(Buffer.concat(chunks));
        }
      });
    });
  }

  /** Reads and parses a JSON object body; `bad_request` for anything else. */
  async jsonBody<T = Record<string, unknown>>(limit: number): Promise<T> {
    const raw = await this.body(limit);
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new RtError('bad_request', 'malformed JSON body');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RtError('bad_request', 'the body must be a JSON object');
    return value as T;
  }
}
