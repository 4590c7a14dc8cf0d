/**
 * What the checks of `npm run check:deploy` share: where the files are, loose JSON accessors for
 * parsed YAML, how a part reports its problems, and small helpers (commands, YAML, durations).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';
import { parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');
export const K8S = join(DEPLOY, 'k8s');
export const COMPOSE_FILE = join(DEPLOY, 'compose.yaml');
export const PROMETHEUS_FILE = join(DEPLOY, 'prometheus', 'prometheus.yml');
export const NGINX_TEMPLATE = join(ROOT, 'nginx', 'nginx.conf.template');

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const obj = (v: unknown): Obj => (isObj(v) ? v : {});
export const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
export const rel = (p: string) => relative(ROOT, p) || '.';

/** One part of the report: what it checked (notes) and what is wrong (problems). */
export interface Part {
  title: string;
  problems: string[];
  notes: string[];
}

export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? ROOT });
  if (r.error) return { ok: false, out: `cannot run ${cmd}: ${r.error.message}` };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

export function which(name: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extra]) {
    const p = join(dir, name);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

/** YAML documents of a file; merge keys (`<<: *anchor`) on, as in Compose and Prometheus. */
export function readYaml(file: string, p: Part): Json[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true, prettyErrors: true });
  const out: Json[] = [];
  for (const d of docs) {
    for (const e of d.errors) p.problems.push(`${rel(file)}: ${e.message}`);
    const v = d.toJS({ maxAliasCount: 1000 }) as Json;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export function ajvErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`);
}

/** `20s`, `1m30s`, `500ms` → milliseconds (Compose durations). */
export function durationMs(v: unknown): number | undefined {
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
export function checkEntryPoint(words: string[], where: string, p: Part): string | undefined {
  const js = words.find((w) => /^dist\/.+\.js$/.test(w));
  if (!js) return undefined;
  const source = js.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  const built = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include?: string[] };
  if (!existsSync(join(ROOT, source))) p.problems.push(`${where}: runs ${js}, but ${source} does not exist`);
  else if (!(built.include ?? []).some((dir) => source.startsWith(`${dir}/`))) p.problems.push(`${where}: runs ${js}, but tsconfig.build.json does not compile ${source}`);
  return source;
}

export function words(v: Json | undefined): string[] {
  return Array.isArray(v) ? v.map((x) => String(x)) : typeof v === 'string' ? v.split(/\s+/) : [];
}

/** The value of `--flag value` or `--flag=value` in a command line. */
export function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i]!.startsWith(`${name}=`)) return args[i]!.slice(name.length + 1);
  }
  return undefined;
}
