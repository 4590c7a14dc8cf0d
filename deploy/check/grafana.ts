/**
 * Grafana: provisioning files, every metric a dashboard query names must be one the gateways and
 * workers export (shared/metric-names.ts) or a process metric, and every query must parse as PromQL
 * (`promtool check rules`, Grafana's variables replaced by plain values).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEPLOY, arr, isObj, obj, readYaml, rel, run, str, type Json, type Obj, type Part } from './common.ts';
import type { ComposeService } from './compose.ts';
import { promtool } from './prometheus.ts';
import { metricSeriesNames } from '../../shared/metric-names.ts';

/** Series a dashboard may use besides ours: prom-client's default process metrics and Prometheus' own. */
const OTHER_METRICS = ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'up'];
const KNOWN_METRICS = new Set([...metricSeriesNames(), ...OTHER_METRICS]);


export function checkGrafana(p: Part, services: ComposeService[]): void {
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
