/** Signing test JWTs the way an application's auth server would. */
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface Claims {
  sub?: string;
  name?: string;
  rooms?: string[];
  iss?: string;
  aud?: string;
  /** Seconds from now; negative for an expired token. Undefined: no exp claim. */
  expiresIn?: number;
}

async function sign(claims: Claims, key: Parameters<SignJWT['sign']>[0], alg: string, kid?: string): Promise<string> {
  const { expiresIn, ...rest } = claims;
  let jwt = new SignJWT({ ...rest }).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).setIssuedAt();
  if (expiresIn !== undefined) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  return jwt.sign(key);
}

export function hs256(claims: Claims, secret = TEST_SECRET): Promise<string> {
  return sign(claims, new TextEncoder().encode(secret), 'HS256');
}

export interface KeyFiles {
  dir: string;
  /** PEM SPKI public key file. */
  pemFile: string;
  /** JWKS file with the public key under `kid`. */
  jwksFile: string;
  sign(claims: Claims): Promise<string>;
}

export async function asymmetricKeys(alg: 'RS256' | 'ES256', kid = 'k1'): Promise<KeyFiles> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const dir = mkdtempSync(join(tmpdir(), 'rt-keys-'));
  const pemFile = join(dir, `${alg}.pem`);
  const jwksFile = join(dir, `${alg}.jwks.json`);
  writeFileSync(pemFile, await exportSPKI(publicKey));
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] }));
  return { dir, pemFile, jwksFile, sign: (claims) => sign(claims, privateKey, alg, kid) };
}
