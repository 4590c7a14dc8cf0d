import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * Random bytes are drawn from the kernel 4 KiB at a time and each byte is used once, as Node's own
 * `crypto.randomUUID` does: one system call per few hundred ids instead of one per id (a gateway
 * makes an id per connection, a worker one per session).
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let used = POOL_BYTES;

/** A random url-safe id of `bytes` random bytes (16 → 22 characters, 128 bits). */
export function randomId(bytes = 16): string {
  if (bytes > POOL_BYTES) return randomBytes(bytes).toString('base64url');
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString('base64url', used, used + bytes);
  used += bytes;
  return id;
}
