/**
 * The gateway's last-resort boundary. Every uWS callback, HTTP route, timer, bus subscription and
 * async continuation runs behind it, so one bad request ends that request or connection (HTTP
 * 500, an `internal` frame, close 1011), never the process; each catch is counted in
 * `rt_gateway_errors_total{where}` and logged with the connection id when there is one.
 */
import type * as UWS from 'uWebSockets.js';
import type { Logger } from '../shared/log.ts';
import { CLOSE_CODES } from '../shared/protocol/codes.ts';
import { answerInternal, type RouteHandler } from './http.ts';
import type { Tally } from '../shared/metrics.ts';

export class Boundary {
  constructor(
    private readonly errors: Tally,
    private readonly log: Logger,
  ) {}

  /** Logs and counts an exception that escaped a handler. */
  failed(where: string, err: unknown, conn?: string): void {
    this.errors.add(where);
    this.log.error({ err, where, conn }, 'unexpected error; answered and kept running');
  }

  /**
   * A function run from a timer, the bus or a promise: exceptions are counted under `where`. Two
   * fixed parameters rather than a rest parameter: bus callbacks run once per room event, and a
   * rest parameter would allocate an array each time.
   */
  guarded(where: string, fn: () => void): () => void;
  guarded<A, B>(where: string, fn: (a: A, b: B) => void): (a: A, b: B) => void;
  guarded(where: string, fn: (a?: unknown, b?: unknown) => void): (a?: unknown, b?: unknown) => void {
    return (a, b) => {
      try {
        fn(a, b);
      } catch (err) {
        this.failed(where, err);
      }
    };
  }

  /** An HTTP handler that answers 500 (if it still can) instead of throwing into uWS. */
  http(where: string, handler: RouteHandler): RouteHandler {
    return (res, req) => {
      try {
        handler(res, req);
      } catch (err) {
        this.failed(where, err);
        answerInternal(res);
      }
    };
  }
}

/** Closes a connection whose handler failed with 1011 (internal error; the client reconnects). */
export function endInternal(ws: UWS.WebSocket<unknown>): void {
  try {
    ws.end(CLOSE_CODES.INTERNAL.code, 'internal error');
  } catch {
    // Already closed.
  }
}
