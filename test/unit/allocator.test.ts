/** tools/allocator.ts: which allocator the server processes get, and that the preload takes. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { allocatorEnv, allocatorName, JEMALLOC_CONF, jemallocPath } from '../../tools/allocator.ts';

describe('allocatorEnv', () => {
  it('preloads the installed jemalloc with its settings, unless told otherwise', () => {
    const lib = jemallocPath();
    expect(lib, 'libjemalloc2 is not installed (.ci/run installs it)').toBeDefined();
    expect(allocatorEnv({})).toEqual({ LD_PRELOAD: lib, MALLOC_CONF: JEMALLOC_CONF });
    expect(allocatorEnv({ MALLOC_CONF: 'narenas:2' })).toEqual({ LD_PRELOAD: lib, MALLOC_CONF: 'narenas:2' });
    expect(allocatorEnv({ RT_ALLOCATOR: 'system' })).toEqual({});
    expect(allocatorEnv({ LD_PRELOAD: '/opt/other.so' })).toEqual({});
    expect(allocatorName({ RT_ALLOCATOR: 'system' })).toBe('glibc malloc');
    expect(allocatorName({})).toContain('jemalloc');
  });

  it('a Node process started with it runs on jemalloc, with the settings in force', () => {
    const script = "const m=require('fs').readFileSync('/proc/self/maps','utf8');process.stdout.write(String(m.includes('libjemalloc')))";
    const run = (env: Record<string, string>) => spawnSync(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    const on = run(allocatorEnv({}));
    expect(on.stderr).toBe('');
    expect(on.stdout).toBe('true');
    expect(run(allocatorEnv({ RT_ALLOCATOR: 'system' })).stdout).toBe('false');
    // A setting jemalloc does not know is reported on stderr: ours are all understood.
    expect(run({ ...allocatorEnv({}), MALLOC_CONF: 'no_such_option:1' }).stderr).toMatch(/jemalloc|Invalid conf/i);
  });
});
