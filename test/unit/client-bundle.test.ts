/**
 * The SDK bundles for browsers and Node alike: no runtime dependency, no Node built-in, nothing
 * from shared/ but the code table (pure data). Built in memory with the same esbuild options as
 * `npm run build:client`.
 */
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ALLOWED_INPUTS = /^(client\/((ui|demo)\/)?[a-z-]+\.ts|shared\/protocol\/(codes|constants)\.ts)$/;

describe('SDK bundle', () => {
  it.each([
    ['neutral', 'client/index.ts'],
    ['browser', 'client/index.ts'],
    ['browser', 'client/demo/app.ts'],
  ] as const)('%s bundle of %s: SDK sources only, no Node built-ins', async (platform, entry) => {
    const out = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform,
      target: 'es2022',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(out.metafile.inputs).filter((f) => f !== entry);
    expect(inputs.filter((f) => !ALLOWED_INPUTS.test(f))).toEqual([]);
    expect(inputs).toContain('client/room.ts');
    const code = out.outputFiles[0]!.text;
    expect(code).not.toMatch(/^\s*import[\s{*]/m);
    expect(code).not.toMatch(/\brequire\(|\bprocess\.|\bBuffer\b/);
    const imports = Object.values(out.metafile.outputs).flatMap((o) => o.imports);
    expect(imports).toEqual([]);
  });
});
