/**
 * The demo app and the browser SDK, served from memory: the files of `dist/public` (made by
 * `npm run build:client`, which `npm start` and `npm run cluster` run first) are read once at start.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Routes } from './http.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** From the sources (gateway/) and from the build (dist/gateway/) alike. */
function publicDir(): string | undefined {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return [join(here, '../dist/public'), join(here, '../public')].find((d) => existsSync(join(d, 'index.html')));
}

const MISSING = Buffer.from(
  '<!doctype html><meta charset="utf-8"><title>rt</title><p>The demo app is not built: run <code>npm run build:client</code> ' +
    '(<code>npm start</code> does it for you).</p><p>WebSocket: <code>/ws</code> · protocol: <code>/asyncapi.json</code></p>',
);

export function registerStatic(app: Routes): void {
  const files = new Map<string, StaticFile>();
  const dir = publicDir();
  if (dir) {
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (!type) continue;
      const body = readFileSync(join(dir, name));
      files.set(`/${name}`, { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` });
    }
  }
  const index = files.get('/index.html') ?? { body: MISSING, type: TYPES['.html']!, etag: '"missing"' };
  files.set('/', index);
  const dashboard = files.get('/dashboard.html');
  if (dashboard) files.set('/dashboard', dashboard);
  for (const [path, file] of files) {
    app.get(path, (res, req) => {
      const fresh = req.getHeader('if-none-match') === file.etag;
      res.cork(() => {
        if (fresh) {
          res.writeStatus('304 Not Modified').end();
          return;
        }
        res
          .writeHeader('content-type', file.type)
          .writeHeader('etag', file.etag)
          .writeHeader('cache-control', path === '/' || path.endsWith('.html') ? 'no-cache' : 'public, max-age=300')
          .writeHeader('x-content-type-options', 'nosniff')
          .end(file.body);
      });
    });
  }
}
