/**
 * Prometheus: `promtool check config` (Debian package `prometheus`); its targets must be exactly the
 * compose gateways (PORT) and workers (METRICS_PORT).
 */
import { resolve } from 'node:path';
import { DEPLOY, PROMETHEUS_FILE, arr, obj, readYaml, rel, run, str, which, words, type Part } from './common.ts';
import type { ComposeService } from './compose.ts';
// Prometheus and Grafana

export function promtool(p: Part): string | undefined {
  const bin = which('promtool');
  if (!bin) p.problems.push('promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it');
  return bin;
}

export function checkPrometheus(p: Part, services: ComposeService[]): void {
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
