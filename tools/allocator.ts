/**
 * The memory allocator of the server processes: jemalloc where it is installed (Debian's
 * libjemalloc2), as the container image runs them (Dockerfile).
 *
 * Why: a connect allocates short-lived native memory (the bytes of NATS messages, HMAC contexts,
 * ArrayBuffer backing stores) between the allocations a socket keeps for its life. glibc's malloc
 * keeps the pages that garbage freed as long as one live allocation shares them, so a gateway's
 * resident memory grows by about twice what its 10,000 idle sockets hold (bench C: 4.1–4.7 KiB per
 * connection, of which `malloc_trim` hands back more than half). jemalloc with a background thread
 * and a 1 s decay returns such pages to the system within about a second (bench C: 2.0–2.1 KiB).
 *
 * `RT_ALLOCATOR=system` keeps glibc's malloc; a caller's own LD_PRELOAD is left alone.
 */
import { existsSync } from 'node:fs';

/** jemalloc's settings (MALLOC_CONF): purge freed pages after 1 s, from a thread of its own. */
export const JEMALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0';

/** Where the image's link (first) and Debian's libjemalloc2 put the library. */
export const JEMALLOC_PATHS = ['/usr/local/lib/libjemalloc.so.2', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'];

/** The installed library, if any. */
export function jemallocPath(): string | undefined {
  return JEMALLOC_PATHS.find((p) => existsSync(p));
}

/** The variables that put a server process on jemalloc, or none (not installed, opted out, or preloaded already). */
export function allocatorEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (env.RT_ALLOCATOR === 'system' || env.LD_PRELOAD) return {};
  const lib = jemallocPath();
  return lib ? { LD_PRELOAD: lib, MALLOC_CONF: env.MALLOC_CONF || JEMALLOC_CONF } : {};
}

/** Which allocator `allocatorEnv(env)` gives: for reports. */
export function allocatorName(env: NodeJS.ProcessEnv = process.env): string {
  const e = allocatorEnv(env);
  if (e.LD_PRELOAD) return `jemalloc (${e.LD_PRELOAD}, MALLOC_CONF=${e.MALLOC_CONF})`;
  return env.LD_PRELOAD ? `LD_PRELOAD=${env.LD_PRELOAD}` : 'glibc malloc';
}
