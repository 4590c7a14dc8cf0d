import { randomBytes } from 'node:crypto';

/** A random url-safe id of `bytes` random bytes (16 → 22 characters, 128 bits). */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}
