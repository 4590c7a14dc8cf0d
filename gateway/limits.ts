/**
 * Rate limits: a token bucket per connection (frames) and per client address (upgrades), and the
 * client address itself (trusting X-Forwarded-For only from TRUSTED_PROXIES).
 */
import { BlockList, isIPv6 } from 'node:net';

/**
 * A token bucket: `rate` tokens a second, at most `burst`. `take()` costs one token and is a few
 * arithmetic operations, cheap enough for every frame.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Full again: nothing to remember about this client. */
  full(now = Date.now()): boolean {
    return this.tokens + ((now - this.last) * this.rate) / 1000 >= this.burst;
  }
}

/**
 * A connection over its request rate. Frames over the rate are refused (`rate_limited`); a
 * connection refused without a pause of a second or more for `closeAfterMs` is hammering and is
 * closed (1008).
 */
export class ConnectionLimiter {
  private readonly bucket: TokenBucket;
  private streakStart = 0;
  private lastRefused = 0;
  constructor(rate: number, burst: number, private readonly closeAfterMs = 10_000) {
    this.bucket = new TokenBucket(rate, burst);
  }

  /** 'ok', 'refuse' (answer rate_limited) or 'close' (sustained abuse). */
  check(now = Date.now()): 'ok' | 'refuse' | 'close' {
    if (this.bucket.take(now)) return 'ok';
    if (now - this.lastRefused > 1000) this.streakStart = now;
    this.lastRefused = now;
    return now - this.streakStart >= this.closeAfterMs ? 'close' : 'refuse';
  }
}

/** Upgrades per second per client address; remembers at most `maxAddresses` addresses. */
export class AddressLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly sweeper: NodeJS.Timeout;
  constructor(
    private readonly rate: number,
    private readonly maxAddresses = 100_000,
  ) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [addr, b] of this.buckets) if (b.full(now)) this.buckets.delete(addr);
    }, 10_000);
    this.sweeper.unref();
  }

  allow(address: string, now = Date.now()): boolean {
    let b = this.buckets.get(address);
    if (!b) {
      // Under a flood of distinct addresses, forget the oldest rather than grow without bound.
      if (this.buckets.size >= this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
      b = new TokenBucket(this.rate, this.rate * 2, now);
      this.buckets.set(address, b);
    }
    return b.take(now);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else as it is. */
export function normalizeAddress(addr: string): string {
  const a = addr.trim().toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** Most addresses TrustedProxies remembers its answer for. */
const TRUST_ANSWERS = 1024;

/** Which peers may tell us the client address. Entries are addresses or CIDR subnets. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly any: boolean;
  constructor(entries: string[] = []) {
    for (const e of entries) {
      const [addr, bits] = e.split('/');
      const type = isIPv6(addr!) ? 'ipv6' : 'ipv4';
      if (bits !== undefined) this.list.addSubnet(addr!, Number(bits), type);
      else this.list.addAddress(addr!, type);
    }
    this.any = entries.length > 0;
  }

  /**
   * Answers for recent addresses: behind a proxy every upgrade comes from one of a few peers, and
   * BlockList.check parses the address into a new SocketAddress each time (a visible share of a
   * connect's CPU). Emptied when full.
   */
  private readonly answers = new Map<string, boolean>();

  trusts(addr: string): boolean {
    if (!this.any) return false;
    let answer = this.answers.get(addr);
    if (answer === undefined) {
      try {
        answer = this.list.check(addr, isIPv6(addr) ? 'ipv6' : 'ipv4');
      } catch {
        answer = false;
      }
      if (this.answers.size >= TRUST_ANSWERS) this.answers.clear();
      this.answers.set(addr, answer);
    }
    return answer;
  }

  /**
   * The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
   * address of X-Forwarded-For that is not itself a trusted proxy, else X-Real-IP.
   */
  clientAddress(peer: string, forwardedFor: string, realIp: string): string {
    const p = normalizeAddress(peer);
    if (!this.trusts(p)) return p;
    if (forwardedFor) {
      const hops = forwardedFor.split(',').map(normalizeAddress).filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) if (!this.trusts(hops[i]!)) return hops[i]!;
      if (hops[0]) return hops[0];
    }
    return realIp ? normalizeAddress(realIp) : p;
  }
}

/**
 * The frame size past which uWebSockets.js drops a connection without a close frame: frames over
 * MAX_FRAME_BYTES and up to this get close 1009, larger ones an abrupt close (1006 for the client).
 * uWS holds a frame up to this size in memory before the gateway sees it.
 */
export function uwsPayloadLimit(maxFrameBytes: number): number {
  return maxFrameBytes + Math.max(maxFrameBytes, 1024 * 1024);
}
