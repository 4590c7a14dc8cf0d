/**
 * Dockerfile + .dockerignore: stages, non-root user, HEALTHCHECK (its script must parse), that every
 * COPY source exists and is let through, and that the commands run files the build produces.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { JEMALLOC_CONF, JEMALLOC_PATHS } from '../../tools/allocator.ts';
import { ROOT, checkEntryPoint, type Part } from './common.ts';

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

export function checkDockerfile(p: Part): { cmd: string[] } {
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

  // The allocator: the settings npm run cluster and the bench use (tools/allocator.ts), and a
  // library that the stage installs.
  const env = new Map<string, string>();
  for (const i of final.filter((x) => x.op === 'ENV')) for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env.set(m[1]!, m[2]!);
  if (env.get('MALLOC_CONF') !== JEMALLOC_CONF) p.problems.push(`Dockerfile: the final stage's MALLOC_CONF should be ${JEMALLOC_CONF} (tools/allocator.ts), not ${env.get('MALLOC_CONF') ?? 'unset'}`);
  const preload = env.get('LD_PRELOAD');
  if (!preload || !JEMALLOC_PATHS.includes(preload)) p.problems.push(`Dockerfile: the final stage's LD_PRELOAD should be one of ${JEMALLOC_PATHS.join(', ')}, not ${preload ?? 'unset'}`);
  if (!final.some((i) => i.op === 'RUN' && /apt-get install\b.*\blibjemalloc2\b/.test(i.args) && (!preload || i.args.includes(preload)))) {
    p.problems.push('Dockerfile: the final stage must install libjemalloc2 and put it where LD_PRELOAD says');
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
