/** The entry points refuse to start on bad configuration or on uWS's JavaScript fallback. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError, configTable, CONFIG_SPEC } from '../../shared/config.ts';

function run(script: string, env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, LOG_LEVEL: 'silent', NATS_URL: '', REDIS_URL: '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
}

describe('startup', () => {
  it('refuses the uWebSockets.js JavaScript fallback with a clear message', () => {
    const r = run('bin/embedded.ts', { UWS_USE_FALLBACK: '1', PORT: '0' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('refusing to run on its slow JavaScript fallback');
  });

  it('stops at start with a message naming a bad variable', () => {
    const r = run('bin/embedded.ts', { PORT: 'eighty' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('PORT="eighty" is invalid');
  });

  it('a worker without REDIS_URL says what is missing', () => {
    const r = run('bin/worker.ts', { NATS_URL: 'nats://127.0.0.1:1' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('REDIS_URL is required');
  });
});

describe('config', () => {
  it('has defaults for the embedded mode, anonymous on', () => {
    const c = loadConfig('embedded', {});
    expect(c).toMatchObject({ port: 8080, allowAnonymous: true, logLevel: 'info', maxFrameBytes: 65536 });
  });

  it('turns anonymous off by default for a gateway', () => {
    expect(loadConfig('gateway', { NATS_URL: 'nats://x:4222' }).allowAnonymous).toBe(false);
    expect(loadConfig('gateway', { NATS_URL: 'nats://x:4222', ALLOW_ANONYMOUS: 'true' }).allowAnonymous).toBe(true);
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['ALLOW_ANONYMOUS', 'maybe'],
    ['LOG_LEVEL', 'loud'],
    ['NATS_URL', 'not a url'],
    ['REQUEST_TIMEOUT_MS', '0'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig('embedded', { [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig('embedded', { [name]: value })).toThrow(new RegExp(`^${name}=`));
  });

  it('documents every variable in the table', () => {
    const table = configTable();
    for (const name of Object.keys(CONFIG_SPEC)) expect(table).toContain(`\`${name}\``);
  });
});

describe('README', () => {
  it('shows the configuration table made from the schema', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(configTable());
    expect(readme).toContain('npm test');
  });
});
