import type { ErrorCode } from '../shared/protocol/codes.ts';

/**
 * Codes the SDK adds to the protocol's error codes:
 * - `timeout`: no answer within the request's timeout (queued or sent; a publish may still have
 *   been stored — retry it with the same `cid`);
 * - `queue_full`: made while disconnected with the offline queue full;
 * - `disconnected`: the connection was lost after the request was sent and the request is not safe
 *   to send twice (`direct`); the server may or may not have acted on it;
 * - `closed`: the client is closed or stopped reconnecting (see the `state` event for why).
 */
export type ClientErrorCode = 'timeout' | 'queue_full' | 'disconnected' | 'closed';

/** Every rejection of the SDK: a protocol error code from the server, or one of the SDK's own. */
export class RtError extends Error {
  override readonly name = 'RtError';
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** With `overloaded`: when the server said to try again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
