/**
 * HS256 tokens are checked in the gateway's own thread (gateway/auth.ts): the signature with
 * node:crypto, the claims by jose. Every way a token can be wrong is refused, and the answer is
 * immediate (no promise) either way.
 */
import { createHmac } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AuthError, Authenticator, type Identity } from '../../gateway/auth.ts';
import { loadConfig } from '../../shared/config.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';

const auth = (env: Record<string, string> = {}) => Authenticator.fromConfig(loadConfig('embedded', { JWT_SECRET: TEST_SECRET, ...env }));
const key = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** The refusal's reason (fails the test if the token was accepted or the answer was a promise). */
function refused(a: Authenticator, token: string): string {
  const out = a.check(token);
  expect(out).toBeInstanceOf(AuthError);
  return (out as AuthError).reason;
}

describe('HS256 verification', () => {
  it('accepts a valid token at once, with its identity and expiry', async () => {
    const out = auth().check(await hs256({ sub: 'ann', name: 'Ann', rooms: ['private:a*'], expiresIn: 60 }));
    expect(out).not.toBeInstanceOf(Promise);
    expect(out).toMatchObject({ user: { id: 'ann', name: 'Ann' }, rooms: ['private:a*'] });
    expect((out as Identity).expiresAt).toBeGreaterThan(Date.now());
  });

  it('refuses a bad signature, another secret, a token cut or padded, and garbage', async () => {
    const a = auth();
    const good = await hs256({ sub: 'ann', expiresIn: 60 });
    const other = await hs256({ sub: 'eve', expiresIn: 60 });
    const [h, p, s] = good.split('.');
    expect(refused(a, `${h}.${other.split('.')[1]}.${s}`)).toContain('signature');
    expect(refused(a, await hs256({ sub: 'ann', expiresIn: 60 }, 'another-secret-that-is-32-characters-long!'))).toContain('signature');
    expect(refused(a, `${h}.${p}.${s}x`)).toMatch(/not valid/);
    expect(refused(a, `${h}.${p}.${s}=`)).toMatch(/not valid/);
    expect(refused(a, `${h}.${p}`)).toMatch(/not valid/);
    expect(refused(a, `${good}.x`)).toMatch(/not valid/);
    expect(refused(a, 'garbage')).toMatch(/not valid/);
    expect(refused(a, '')).toMatch(/not valid/);
  });

  it('refuses other algorithms, alg none and headers that change how a token is read', async () => {
    const a = auth();
    const claims = { sub: 'ann', exp: now() + 60 };
    expect(refused(a, await new SignJWT(claims).setProtectedHeader({ alg: 'HS384' }).sign(key))).toContain('algorithm');
    expect(refused(a, new UnsecuredJWT(claims).encode())).toContain('algorithm');
    // Validly signed, but with a header that changes how the token is to be read.
    const signed = (header: unknown) => {
      const input = `${b64(header)}.${b64(claims)}`;
      return `${input}.${createHmac('sha256', TEST_SECRET).update(input).digest('base64url')}`;
    };
    expect(a.check(signed({ alg: 'HS256' }))).toMatchObject({ user: { id: 'ann' } });
    expect(refused(a, signed({ alg: 'HS256', crit: ['x'], x: 1 }))).toMatch(/not valid/);
    expect(refused(a, signed({ alg: 'HS256', b64: false, crit: ['b64'] }))).toMatch(/not valid/);
  });

  it('validates the claims through jose: exp with the clock skew, nbf, iss, aud; sub and rooms by rt', async () => {
    const strict = auth({ JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'rt', JWT_CLOCK_SKEW_S: '30' });
    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key);
    const base = { sub: 'ann', iss: 'https://auth.example', aud: 'rt' };
    expect(strict.check(await sign({ ...base, exp: now() - 10 }))).not.toBeInstanceOf(AuthError);
    const expired = strict.check(await sign({ ...base, exp: now() - 60 }));
    expect(expired).toMatchObject({ kind: 'expired', reason: 'token expired' });
    expect(refused(strict, await sign({ ...base, nbf: now() + 120 }))).toContain('nbf');
    expect(refused(strict, await sign({ ...base, iss: 'https://evil.example' }))).toContain('iss');
    expect(refused(strict, await sign({ ...base, aud: 'other' }))).toContain('aud');
    expect(refused(strict, await sign({ ...base, exp: 'soon' }))).toMatch(/exp|not valid/);
    expect(refused(strict, await sign({ iss: base.iss, aud: base.aud }))).toContain('sub');
    expect(refused(auth(), await sign({ sub: 'ann', rooms: Array.from({ length: 300 }, (_, i) => `r${i}`) }))).toContain('rooms');
  });
});
