/**
 * The nginx template's rule that keeps credentials out of its error log: nginx writes every error
 * about a request with the raw request line and Referer (where `?token=` and `?ticket=` travel), so
 * every location, including one added later, must log only at `emerg`.
 * test/e2e/credentials-in-logs.test.ts checks the effect through a real nginx.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NGINX_TEMPLATE } from '../../tools/nginx.ts';

/** Each `location` block of the template: its header line and its body up to the matching brace. */
function locations(conf: string): { name: string; body: string }[] {
  const out: { name: string; body: string }[] = [];
  const header = /^\s*location\s+([^{]+)\{/gm;
  for (let m = header.exec(conf); m; m = header.exec(conf)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < conf.length && depth > 0; i++) depth += conf[i] === '{' ? 1 : conf[i] === '}' ? -1 : 0;
    out.push({ name: m[1]!.trim(), body: conf.slice(m.index + m[0].length, i - 1) });
  }
  return out;
}

describe('nginx template', () => {
  const conf = readFileSync(NGINX_TEMPLATE, 'utf8');

  it('logs request errors only at emerg in every location, so no request line reaches the error log', () => {
    const all = locations(conf);
    expect(all.map((l) => l.name)).toEqual(expect.arrayContaining(['= /ws', '= /sse', '/api/', '/']));
    const loud = all.filter((l) => !/^\s*error_log\s+\$\{NGINX_ERROR_LOG\}\s+emerg;/m.test(l.body)).map((l) => l.name);
    expect(loud).toEqual([]);
  });

  it('never writes the request line, the request URI or the Referer into the access log', () => {
    const formats = [...conf.matchAll(/log_format\s[\s\S]*?;/g)].map((m) => m[0]);
    expect(formats.length).toBeGreaterThan(0);
    for (const f of formats) expect(f).not.toMatch(/\$request\b|\$request_uri|\$args|\$query_string|\$http_referer|\$arg_/);
  });
});
