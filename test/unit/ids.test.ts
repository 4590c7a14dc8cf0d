/** randomId (shared/ids.ts): ids from a pool of random bytes, each byte used once. */
import { describe, expect, it } from 'vitest';
import { randomId } from '../../shared/ids.ts';

describe('randomId', () => {
  it('has the length and alphabet of base64url for every size, across many pool refills', () => {
    for (const bytes of [1, 3, 6, 12, 16, 24, 4095, 4096, 4097, 10_000]) {
      for (let i = 0; i < 20; i++) {
        const id = randomId(bytes);
        expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(Buffer.from(id, 'base64url').length).toBe(bytes);
      }
    }
  });

  it('never repeats an id, nor reuses the bytes of the one before (200,000 ids)', () => {
    const seen = new Set<string>();
    let previous = Buffer.alloc(0);
    for (let i = 0; i < 200_000; i++) {
      const id = randomId(12);
      seen.add(id);
      const bytes = Buffer.from(id, 'base64url');
      // A pool handed out twice would give the same 12 bytes again somewhere; overlapping slices
      // would share a suffix with a prefix of the next one.
      expect(bytes.subarray(0, 6).equals(previous.subarray(6))).toBe(false);
      previous = bytes;
    }
    expect(seen.size).toBe(200_000);
  });

  it('draws bits evenly: each of the 8 bit positions is set in about half the bytes', () => {
    const counts = new Array<number>(8).fill(0);
    const n = 50_000;
    for (let i = 0; i < n / 10; i++) {
      for (const b of Buffer.from(randomId(10), 'base64url')) for (let bit = 0; bit < 8; bit++) counts[bit]! += (b >> bit) & 1;
    }
    // Binomial(50,000, 0.5): sd ≈ 112; 1,000 is about 9 sd.
    for (const c of counts) expect(Math.abs(c - n / 2)).toBeLessThan(1000);
  });
});
