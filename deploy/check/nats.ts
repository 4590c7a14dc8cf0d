/**
 * The NATS cluster of the deployment files, in both shapes: at least 3 servers, each with the same
 * cluster name and routes to every other server, and a NATS_URL that names every server, so that
 * a gateway or worker whose server dies has another to reconnect to. A route or a URL naming a
 * server that does not exist, or one left out, is the kind of slip that only shows in a failover.
 */
import { arr, flag, obj, str, words, type Obj, type Part } from './common.ts';
import type { ComposeService } from './compose.ts';

const MIN_SERVERS = 3;

/** Host names of a comma-separated list of nats:// URLs. */
function hosts(list: string | undefined): string[] {
  return (list ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .map((u) => {
      try {
        return new URL(u).hostname;
      } catch {
        return `(bad URL ${u})`;
      }
    });
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

export function checkComposeNats(p: Part, services: ComposeService[]): void {
  const nats = services.filter((s) => words(s.def.command).includes('nats-server'));
  const names = nats.map((s) => s.name);
  if (nats.length < MIN_SERVERS) p.problems.push(`compose: ${nats.length} NATS server(s); the production shape is a cluster of at least ${MIN_SERVERS}`);
  const clusterNames = new Set<string | undefined>();
  for (const s of nats) {
    const args = words(s.def.command);
    clusterNames.add(flag(args, '--cluster_name'));
    if (!flag(args, '--cluster')) p.problems.push(`compose service ${s.name}: no --cluster listen address for routes`);
    const routes = hosts(flag(args, '--routes')).filter((h) => h !== s.name);
    const others = names.filter((n) => n !== s.name);
    if (!sameSet(routes, others)) p.problems.push(`compose service ${s.name}: --routes name ${routes.join(', ') || 'nothing'}, not every other NATS server (${others.join(', ')})`);
  }
  if (clusterNames.size > 1 || clusterNames.has(undefined)) p.problems.push(`compose: the NATS servers must share one --cluster_name (have: ${[...clusterNames].join(', ')})`);
  for (const s of services.filter((x) => x.role)) {
    const listed = hosts(s.env.NATS_URL);
    if (!sameSet(listed, names)) p.problems.push(`compose service ${s.name}: NATS_URL names ${listed.join(', ')}, not every NATS server (${names.join(', ')})`);
  }
  if (p.problems.length === 0) p.notes.push(`NATS: a cluster of ${nats.length} servers, each routed to the others, all in every NATS_URL`);
}

export function checkK8sNats(p: Part, objects: Obj[]): void {
  const sts = objects.find((o) => o.kind === 'StatefulSet' && arr(obj(obj(obj(o.spec).template).spec).containers).some((c) => /^nats[:@]/.test(str(obj(c).image) ?? '')));
  if (!sts) {
    p.problems.push('Kubernetes: no NATS StatefulSet');
    return;
  }
  const name = str(obj(sts.metadata).name)!;
  const headless = str(obj(sts.spec).serviceName);
  const replicas = Number(obj(sts.spec).replicas ?? 1);
  const pods = Array.from({ length: replicas }, (_, i) => `${name}-${i}.${headless}`);
  const before = p.problems.length;
  if (replicas < MIN_SERVERS) p.problems.push(`StatefulSet/${name}: ${replicas} replica(s); the production shape is a NATS cluster of at least ${MIN_SERVERS}`);
  const container = obj(arr(obj(obj(obj(sts.spec).template).spec).containers).map(obj).find((c) => /^nats[:@]/.test(str(c.image) ?? '')));
  const args = [...words(container.command), ...words(container.args)];
  if (!flag(args, '--cluster_name') || !flag(args, '--cluster')) p.problems.push(`StatefulSet/${name}: nats-server needs --cluster_name and --cluster`);
  const routes = hosts(flag(args, '--routes'));
  if (!sameSet(routes, pods)) p.problems.push(`StatefulSet/${name}: --routes name ${routes.join(', ') || 'nothing'}, not its ${replicas} pods (${pods.join(', ')})`);
  if (!objects.some((o) => o.kind === 'PodDisruptionBudget' && obj(obj(obj(o.spec).selector).matchLabels)['app.kubernetes.io/name'] === 'nats')) {
    p.problems.push(`StatefulSet/${name}: no PodDisruptionBudget: a node drain could take several NATS servers at once`);
  }
  for (const cm of objects.filter((o) => o.kind === 'ConfigMap' && str(obj(o.data).NATS_URL) !== undefined)) {
    const listed = hosts(str(obj(cm.data).NATS_URL));
    if (!sameSet(listed, pods)) p.problems.push(`ConfigMap/${str(obj(cm.metadata).name)}: NATS_URL names ${listed.join(', ')}, not every NATS pod (${pods.join(', ')})`);
  }
  if (p.problems.length === before) p.notes.push(`NATS: StatefulSet/${name}, ${replicas} servers routed to each other, all in NATS_URL`);
}
