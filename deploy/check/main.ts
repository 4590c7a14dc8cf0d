/**
 * `npm run check:deploy` (CI runs it): checks the deployment files offline — no Docker engine, no
 * cluster, no network. Each part is checked by the tool or the schema that defines it (one module
 * per target beside this one), then against the others, because most deployment bugs are two files
 * that disagree (a gateway missing from Prometheus, a probe on a port the container does not open).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPOSE_FILE, K8S, NGINX_TEMPLATE, PROMETHEUS_FILE, ROOT, rel, type Obj, type Part } from './common.ts';
import { checkCompose, loadCompose, type ComposeService } from './compose.ts';
import { checkDockerfile } from './docker.ts';
import { checkGrafana } from './grafana.ts';
import { checkKubernetes } from './kubernetes.ts';
import { checkNginx } from './nginx.ts';
import { checkPrometheus } from './prometheus.ts';
import { composeInitScript } from './redis.ts';

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
  await part(`Kubernetes: ${rel(K8S)}`, (p) => checkKubernetes(p, composeInitScript(compose.services)));

  const failed = parts.filter((p) => p.problems.length > 0);
  process.stdout.write(failed.length === 0 ? `check:deploy: all ${parts.length} parts are valid\n` : `check:deploy: ${failed.length} of ${parts.length} parts have problems\n`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

await main();
