/**
 * Every error code and close code of protocol v1 in one table, with what a client should do.
 * The gateway, the worker, the SDK and the protocol docs all read from here.
 */

export const ERROR_CODES = {
  bad_request: { status: 400, description: 'Malformed JSON, a missing or invalid field.', client: 'Fix the request.' },
  unknown_type: { status: 400, description: 'The frame has a `type` this server does not know.', client: 'Fix the request.' },
  not_member: { status: 403, description: 'The request needs membership of the room; join first.', client: 'Join the room, then retry.' },
  forbidden: { status: 403, description: 'The user may not do this.', client: 'Do not retry.' },
  not_found: { status: 404, description: 'The thing asked for does not exist.', client: 'Do not retry.' },
  rate_limited: { status: 429, description: 'Too many requests.', client: 'Slow down, retry later.' },
  too_large: { status: 413, description: 'A field or body is over its limit.', client: 'Send less.' },
  unauthorized: { status: 401, description: 'Missing, bad or expired credentials.', client: 'Get new credentials.' },
  overloaded: {
    status: 503,
    description:
      'The server is at its in-flight limit (per connection or per gateway) and refused the request at once, without starting it: nothing was stored. `retryAfterMs` says when to try again.',
    client: 'Retry after `retryAfterMs` (publish with the same cid); the SDK does this.',
  },
  unavailable: { status: 503, description: 'A backend is down or did not answer in time.', client: 'Retry with backoff (publish with the same cid).' },
  internal: { status: 500, description: 'A bug on our side.', client: 'Retry with backoff; report it.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const CLOSE_CODES = {
  NORMAL: { code: 1000, meaning: 'normal', client: 'stop' },
  GOING_AWAY: { code: 1001, meaning: 'going away (gateway draining or shutting down)', client: 'reconnect with jitter, resume' },
  UNSUPPORTED_DATA: { code: 1003, meaning: 'binary frame not supported', client: 'fix the client' },
  POLICY_VIOLATION: { code: 1008, meaning: 'policy violation (sustained abuse, origin)', client: 'stop' },
  TOO_LARGE: { code: 1009, meaning: 'frame too large', client: 'fix the client' },
  INTERNAL: { code: 1011, meaning: 'internal error', client: 'reconnect with backoff' },
  TRY_AGAIN_LATER: { code: 1013, meaning: 'try again later (gateway at capacity, slow consumer)', client: 'reconnect with backoff, resume' },
  UNAUTHORIZED: { code: 4001, meaning: 'unauthorized (missing, bad or expired credentials)', client: 'get new credentials before reconnecting' },
  FORBIDDEN: { code: 4003, meaning: 'forbidden', client: 'stop' },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;
