/**
 * RtClient's options with their defaults filled in (the defaults are documented on RtClientOptions
 * in types.ts and in client/README.md).
 */
import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { DEFAULT_PACE, type PaceOptions } from './pacer.ts';
import type { RtClientOptions } from './types.ts';

/** @internal */
export interface Resolved {
  reconnect: false | (BackoffPolicy & { maxAttempts: number | undefined; goingAwayJitterMs: number });
  requestTimeoutMs: number;
  maxQueue: number;
  connectTimeoutMs: number;
  pongTimeoutMs: number;
  joinLimit: number | undefined;
  recoveryLimit: number;
  tokenRefreshMarginMs: number;
  random: () => number;
  pace: PaceOptions | false;
}

/** @internal */
export function resolveOptions(options: RtClientOptions): Resolved {
  const r = options.reconnect;
  return {
    reconnect:
      r === false
        ? false
        : {
            baseMs: r?.baseMs ?? DEFAULT_BACKOFF.baseMs,
            capMs: r?.capMs ?? DEFAULT_BACKOFF.capMs,
            maxAttempts: r?.maxAttempts,
            goingAwayJitterMs: r?.goingAwayJitterMs ?? 500,
          },
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    maxQueue: options.maxQueue ?? 100,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
    joinLimit: options.joinLimit,
    recoveryLimit: options.recoveryLimit ?? 100,
    tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 30_000,
    random: options.random ?? Math.random,
    pace: options.pace === false ? false : { ...DEFAULT_PACE, ...options.pace },
  };
}
