/**
 * nginx for a local cluster (tools/cluster.ts): the project's `nginx/nginx.conf.template` rendered
 * with the run's values, the binary found, and the result checked with `nginx -t` before it runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPath } from './processes.ts';

export const NGINX_TEMPLATE = fileURLToPath(new URL('../nginx/nginx.conf.template', import.meta.url));


/** The run-time values of the template's placeholders. */
export interface NginxValues {
  /** `127.0.0.1:8080` or `8080`. */
  listen: string;
  /** Gateway addresses, `127.0.0.1:41234`. */
  upstreams: string[];
  /** Directory for the pid file and temporary files. */
  prefix: string;
  logDir: string;
}

/** Renders `nginx/nginx.conf.template`: replaces its `${NGINX_*}` placeholders and nothing else. */
export function renderNginxConfig(v: NginxValues, template = readFileSync(NGINX_TEMPLATE, 'utf8')): string {
  if (v.upstreams.length === 0) throw new Error('nginx needs at least one gateway');
  const values: Record<string, string> = {
    NGINX_LISTEN: v.listen,
    NGINX_UPSTREAM_SERVERS: v.upstreams.map((u) => `        server ${u} max_fails=0;`).join('\n'),
    NGINX_PID_FILE: join(v.prefix, 'nginx.pid'),
    NGINX_TEMP_DIR: join(v.prefix, 'tmp'),
    NGINX_ACCESS_LOG: join(v.logDir, 'nginx-access.log'),
    NGINX_ERROR_LOG: nginxErrorLog(v.logDir),
  };
  for (const [name, value] of Object.entries(values)) {
    if (name !== 'NGINX_UPSTREAM_SERVERS' && /[\s;"'{}$]/.test(value)) throw new Error(`${name} for nginx must not contain spaces or ; " ' { } $: ${JSON.stringify(value)}`);
  }
  return template.replace(/\$\{(NGINX_[A-Z_]+)\}/g, (_m, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${NGINX_TEMPLATE}: unknown placeholder \${${name}}`);
    return value;
  });
}

export const nginxErrorLog = (logDir: string) => join(logDir, 'nginx-error.log');

export function findNginx(): string {
  if (onPath('nginx')) return 'nginx';
  // Debian puts it in /usr/sbin, which is not on every user's PATH.
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  throw new Error('nginx not found: install it (Debian: apt-get install nginx-light, or nginx)');
}

/** `nginx -t` on the rendered file: a bad config fails here with nginx's own message. */
export function checkNginxConfig(bin: string, prefix: string, conf: string, errorLog: string): void {
  const r = spawnSync(bin, ['-t', '-q', '-p', `${prefix}/`, '-c', conf, '-e', errorLog], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nginx rejects ${conf}:\n${(r.stderr || r.stdout).trim()}`);
}
