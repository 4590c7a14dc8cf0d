/**
 * `npm run build:client` (and before `npm start`, `npm run cluster`, `npm test`, inside `npm run
 * build`): bundles the SDK, the demo chat and the dashboard page into dist/ and writes the SDK's
 * type declarations. Prints one line when it worked; on failure, esbuild's or tsc's messages and
 * exit code 1.
 *
 * dist/client/index.js     the SDK as an npm module (ESM, platform neutral), with .d.ts beside it
 * dist/public/rt-client.js  the SDK for browsers, served by the gateway
 * dist/public/app.js, index.html, app.css                    the demo chat (served at /)
 * dist/public/dashboard.js, dashboard.html, dashboard.css    the dashboard (served at /dashboard)
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const at = (...p: string[]) => join(ROOT, ...p);
const require = createRequire(import.meta.url);

const common: BuildOptions = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, logLevel: 'warning' };
const bundles: BuildOptions[] = [
  { ...common, entryPoints: [at('client/index.ts')], platform: 'neutral', outfile: at('dist/client/index.js') },
  { ...common, entryPoints: [at('client/index.ts')], platform: 'browser', outfile: at('dist/public/rt-client.js') },
  { ...common, entryPoints: [at('client/demo/app.ts')], platform: 'browser', minify: true, outfile: at('dist/public/app.js') },
  { ...common, entryPoints: [at('client/dashboard/dashboard.ts')], platform: 'browser', minify: true, outfile: at('dist/public/dashboard.js') },
];
const copies: [string, string][] = [
  ['client/demo/index.html', 'dist/public/index.html'],
  ['client/demo/app.css', 'dist/public/app.css'],
  ['client/dashboard/index.html', 'dist/public/dashboard.html'],
  ['client/dashboard/dashboard.css', 'dist/public/dashboard.css'],
];

/** The SDK's declarations (client/tsconfig.json emits only .d.ts); tsc's output only when it fails. */
function declarations(): Promise<void> {
  return new Promise((resolve, reject) => {
    const tsc = spawn(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', at('client/tsconfig.json')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    tsc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    tsc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    tsc.once('error', reject);
    tsc.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tsc -p client/tsconfig.json failed:\n${out.trim()}`))));
  });
}

const started = Date.now();
try {
  mkdirSync(at('dist/public'), { recursive: true });
  for (const [from, to] of copies) copyFileSync(at(from), at(to));
  await Promise.all([...bundles.map((b) => build(b)), declarations()]);
} catch (err) {
  // esbuild has printed its errors already (logLevel); its exception only repeats them.
  const message = (err as Error).message ?? String(err);
  process.stderr.write(`build-client: failed${/^Build failed/.test(message) ? '' : `: ${message}`}\n`);
  process.exit(1);
}
process.stdout.write(`build-client: dist/client (SDK and types) and dist/public (rt-client.js, demo, dashboard) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
