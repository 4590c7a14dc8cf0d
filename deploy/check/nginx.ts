/**
 * nginx: `nginx -t` on nginx/nginx.conf.template rendered with the values compose gives the nginx
 * container. Two kinds of value are replaced for the check only: the gateways' host names
 * (`gateway-1` does not resolve here and nginx resolves upstream names at load) become 127.0.0.1,
 * and the container's file paths (pid, temporary files, logs) become a temporary directory.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEPLOY, NGINX_TEMPLATE, arr, obj, rel, run, str, which, type Part } from './common.ts';
import type { ComposeService } from './compose.ts';
// nginx

const NGINX_PLACEHOLDER = /\$\{(NGINX_[A-Z0-9_]+)\}|\$(NGINX_[A-Z0-9_]+)/g;

function envsubst(template: string, values: Record<string, string>): { text: string; missing: string[] } {
  const missing = new Set<string>();
  const text = template.replace(NGINX_PLACEHOLDER, (m, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (values[name] === undefined) {
      missing.add(name);
      return m;
    }
    return values[name];
  });
  return { text, missing: [...missing] };
}

export function checkNginx(p: Part, services: ComposeService[]): void {
  const nginx = services.find((s) => s.name === 'nginx');
  if (!nginx) {
    p.problems.push('compose: no nginx service');
    return;
  }
  const env = nginx.env;
  const template = readFileSync(NGINX_TEMPLATE, 'utf8');
  const mount = arr(nginx.def.volumes).map(obj).find((v) => str(v.source)?.endsWith('nginx.conf.template'));
  const target = str(mount?.target) ?? '';
  const outDir = env.NGINX_ENVSUBST_OUTPUT_DIR ?? '/etc/nginx/conf.d';
  if (!mount || resolve(DEPLOY, str(mount.source)!) !== NGINX_TEMPLATE) p.problems.push('compose service nginx: must mount nginx/nginx.conf.template');
  if (!/^\/etc\/nginx\/templates\/[^/]+\.template$/.test(target)) p.problems.push(`compose service nginx: the template must be mounted as /etc/nginx/templates/<name>.template, not ${target}`);
  else if (`${outDir}/${target.split('/').at(-1)!.replace(/\.template$/, '')}` !== '/etc/nginx/nginx.conf') {
    p.problems.push(`compose service nginx: the rendered file would be ${outDir}/${target.split('/').at(-1)!.replace(/\.template$/, '')}, not /etc/nginx/nginx.conf (set NGINX_ENVSUBST_OUTPUT_DIR=/etc/nginx)`);
  }
  if (env.NGINX_ENVSUBST_FILTER !== '^NGINX_') p.problems.push('compose service nginx: set NGINX_ENVSUBST_FILTER=^NGINX_ so envsubst touches only the placeholders');

  const placeholders = new Set([...template.matchAll(NGINX_PLACEHOLDER)].map((m) => (m[1] ?? m[2])!));
  const given = Object.keys(env).filter((k) => k.startsWith('NGINX_') && !k.startsWith('NGINX_ENVSUBST_'));
  for (const name of placeholders) if (env[name] === undefined) p.problems.push(`compose service nginx: no value for the template's \${${name}} (it would stay in nginx.conf as written)`);
  for (const name of given) if (!placeholders.has(name)) p.problems.push(`compose service nginx: ${name} is not a placeholder of ${rel(NGINX_TEMPLATE)}`);

  // The upstream servers are the gateways, on their PORT.
  const servers = [...(env.NGINX_UPSTREAM_SERVERS ?? '').matchAll(/server\s+([^\s;]+)[^;]*;/g)].map((m) => m[1]!);
  const gateways = services.filter((s) => s.role === 'gateway').map((s) => `${s.name}:${s.env.PORT ?? '8080'}`);
  if (servers.sort().join() !== [...gateways].sort().join()) p.problems.push(`nginx upstream servers [${servers.join(', ')}] are not the compose gateways [${gateways.join(', ')}]`);

  // Gateways believe X-Forwarded-For only from TRUSTED_PROXIES: nginx's address must be in it.
  const nginxIp = str(obj(obj(nginx.def.networks)[Object.keys(obj(nginx.def.networks))[0] ?? '']).ipv4_address);
  for (const g of services.filter((s) => s.role === 'gateway')) {
    const trusted = (g.env.TRUSTED_PROXIES ?? '').split(',').map((x) => x.trim());
    if (!nginxIp || !trusted.includes(nginxIp)) p.problems.push(`compose service ${g.name}: TRUSTED_PROXIES must name nginx's fixed address (${nginxIp ?? 'nginx has none'})`);
  }

  const bin = which('nginx', ['/usr/sbin', '/usr/local/sbin']);
  if (!bin) {
    p.problems.push('nginx is not installed (Debian: apt-get install nginx); .ci/run installs it');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'rt-check-nginx-'));
  try {
    mkdirSync(join(dir, 'tmp'));
    const values: Record<string, string> = {
      ...env,
      NGINX_UPSTREAM_SERVERS: (env.NGINX_UPSTREAM_SERVERS ?? '').replace(/server\s+[^\s:;]+:/g, 'server 127.0.0.1:'),
      NGINX_PID_FILE: join(dir, 'nginx.pid'),
      NGINX_TEMP_DIR: join(dir, 'tmp'),
      NGINX_ACCESS_LOG: join(dir, 'access.log'),
      NGINX_ERROR_LOG: join(dir, 'error.log'),
    };
    const { text, missing } = envsubst(template, values);
    if (missing.length) return;
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, text);
    const r = run(bin, ['-t', '-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')]);
    if (!r.ok) p.problems.push(`nginx -t rejects ${rel(NGINX_TEMPLATE)} rendered with compose's values:\n${r.out}`);
    else p.notes.push(`${bin} -t: ${r.out.split('\n').find((l) => /syntax is ok/.test(l)) ?? 'ok'} (gateway names → 127.0.0.1, container paths → a temporary directory)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
