/** TrustedProxies (gateway/limits.ts): which peers may name the client, with its answers remembered. */
import { describe, expect, it } from 'vitest';
import { TrustedProxies } from '../../gateway/limits.ts';

describe('TrustedProxies', () => {
  it('trusts listed addresses and subnets only, asked again and again, past the size of its memory', () => {
    const p = new TrustedProxies(['10.1.0.0/16', '192.168.5.5', 'fd00::/8']);
    for (let round = 0; round < 3; round++) {
      // 3,000 distinct addresses: the remembered answers are emptied and refilled along the way.
      for (let i = 0; i < 3000; i++) {
        const inside = `10.1.${i >> 8}.${i & 255}`;
        const outside = `10.2.${i >> 8}.${i & 255}`;
        expect(p.trusts(inside), inside).toBe(true);
        expect(p.trusts(outside), outside).toBe(false);
      }
      expect(p.trusts('192.168.5.5')).toBe(true);
      expect(p.trusts('192.168.5.6')).toBe(false);
      expect(p.trusts('fd12::1')).toBe(true);
      expect(p.trusts('fe80::1')).toBe(false);
      expect(p.trusts('not an address')).toBe(false);
      expect(p.trusts('')).toBe(false);
    }
  });

  it('names the client: the peer unless it is trusted, then the right-most untrusted forwarded hop', () => {
    const p = new TrustedProxies(['127.0.0.1', '10.0.0.0/8']);
    expect(p.clientAddress('203.0.113.9', '198.51.100.1', '')).toBe('203.0.113.9');
    expect(p.clientAddress('127.0.0.1', '198.51.100.1, 10.0.0.7', '')).toBe('198.51.100.1');
    expect(p.clientAddress('::ffff:127.0.0.1', '198.51.100.2', '')).toBe('198.51.100.2');
    expect(p.clientAddress('127.0.0.1', '', '198.51.100.3')).toBe('198.51.100.3');
    expect(p.clientAddress('127.0.0.1', '10.0.0.1, 10.0.0.2', '')).toBe('10.0.0.1');
    // Nothing is trusted without a list: the peer is the client whatever it forwards.
    expect(new TrustedProxies().clientAddress('127.0.0.1', '198.51.100.1', '198.51.100.3')).toBe('127.0.0.1');
  });
});
