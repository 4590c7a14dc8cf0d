/**
 * The `rooms` claim matcher against a reference: a dynamic-programming matcher that is obviously
 * right (and quadratic, fine on small inputs), over random patterns and rooms from a small
 * alphabet, so that stars, repeats and near misses are common.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { globMatch } from '../../gateway/glob.ts';

/** matches[i][j]: pattern[i..] matches text[j..]. */
function reference(pattern: string, text: string): boolean {
  const m = pattern.length;
  const n = text.length;
  const next = new Array<boolean>(n + 1).fill(false);
  next[n] = true; // the empty pattern matches only the empty rest
  for (let i = m - 1; i >= 0; i--) {
    const row = new Array<boolean>(n + 1).fill(false);
    for (let j = n; j >= 0; j--) {
      if (pattern[i] === '*') row[j] = next[j]! || (j < n && row[j + 1]!);
      else row[j] = j < n && pattern[i] === text[j] && next[j + 1]!;
    }
    next.splice(0, n + 1, ...row);
  }
  return next[0]!;
}

const patternArb = fc.string({ unit: fc.constantFrom('a', 'b', ':', '*'), maxLength: 10 });
const textArb = fc.string({ unit: fc.constantFrom('a', 'b', ':'), maxLength: 12 });

describe('room pattern glob', () => {
  it('agrees with the reference matcher on random patterns and rooms', () => {
    fc.assert(
      fc.property(patternArb, textArb, (pattern, text) => {
        expect(globMatch(pattern, text)).toBe(reference(pattern, text));
      }),
      { numRuns: 20_000 },
    );
  });

  it('matches every room made by filling the stars of a pattern', () => {
    fc.assert(
      fc.property(patternArb, fc.array(textArb, { minLength: 11, maxLength: 11 }), (pattern, fills) => {
        const room = pattern
          .split('*')
          .map((piece, i) => (i === 0 ? piece : fills[i - 1] + piece))
          .join('');
        expect(globMatch(pattern, room)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it.each([
    ['private:team-*', 'private:team-red', true],
    ['private:team-*', 'private:team-', true],
    ['private:team-*', 'private:teams', false],
    ['private:*-ops', 'private:eu-ops', true],
    ['private:*-ops', 'private:eu-ops-2', false],
    ['ab*ba', 'aba', false],
    ['ab*ba', 'abba', true],
    ['*', '', true],
    ['**', 'x', true],
    ['private:a', 'private:a', true],
    ['private:a', 'private:ab', false],
    ['private:.*', 'private:xyz', false],
    ['private:[a]*', 'private:[a]z', true],
  ])('%s against %s: %s', (pattern, room, expected) => {
    expect(globMatch(pattern, room)).toBe(expected);
    expect(reference(pattern, room)).toBe(expected);
  });

  it('answers the adversarial patterns that made a regular expression backtrack', () => {
    const as = 'a'.repeat(200);
    expect(globMatch('private:a*a*a*a*a*a*a*a*a*b', `private:${as}`)).toBe(false);
    expect(globMatch('private:a*a*a*a*a*a*a*a*a*b', `private:${as}b`)).toBe(true);
    expect(globMatch(`private:${'*a'.repeat(60)}*b`, `private:${as}`)).toBe(false);
    expect(globMatch(`private:${'a*'.repeat(100)}`, `private:${'a'.repeat(99)}`)).toBe(false);
    expect(globMatch(`private:${'a*'.repeat(100)}`, `private:${as}`)).toBe(true);
  });
});
