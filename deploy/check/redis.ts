/**
 * The Redis Cluster of the deployment files, in both shapes: at least 3 primaries with a replica
 * each (6 nodes), every node in cluster mode with an append-only file on its own volume, a one-shot
 * step that creates the cluster with `--cluster-replicas N` (the same script in compose and
 * Kubernetes), and processes that name every node in REDIS_CLUSTER_NODES and wait for a replica
 * (REDIS_WAIT_REPLICAS ≥ 1, ≤ N: more than a shard has could never be acknowledged). No REDIS_URL
 * anywhere: a process left on a single Redis would split the state in two.
 *
 * Which processes: in compose the workers (the only role that opens the stores; gateways keep
 * nothing in Redis, bin/server.ts), and any gateway that is given Redis settings must agree. In
 * Kubernetes every rt container, since gateways and workers read the same ConfigMap.
 */
import { arr, flag, obj, str, words, type Json, type Obj, type Part } from './common.ts';
import type { ComposeService } from './compose.ts';

const MIN_PRIMARIES = 3;
const REDIS_PORT = 6379;

/** `host:port` entries of a comma-separated list. */
function entries(list: string | undefined): string[] {
  return (list ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** What the cluster-creating script says: the replicas per primary, and whether it is idempotent. */
function initScript(text: string, where: string, p: Part): number | undefined {
  const create = /redis-cli\b[^\n]*--cluster\s+create\b[^\n]*/.exec(text)?.[0];
  if (!create) {
    p.problems.push(`${where}: no \`redis-cli --cluster create\``);
    return undefined;
  }
  const replicas = Number(/--cluster-replicas\s+(\d+)/.exec(create)?.[1] ?? 0);
  if (replicas < 1) p.problems.push(`${where}: \`--cluster create\` without --cluster-replicas ≥ 1: primaries without replicas lose their slots with them`);
  if (!/--cluster-yes/.test(create)) p.problems.push(`${where}: \`--cluster create\` without --cluster-yes waits for a "yes" nobody types`);
  // Idempotent: it looks at the nodes before creating, and waits for cluster_state:ok.
  if (!/cluster_slots_assigned|cluster_known_nodes/.test(text)) p.problems.push(`${where}: does not check whether the nodes are in a cluster already before \`--cluster create\` (a second run must create nothing)`);
  if (!/cluster_state/.test(text) || !/\bok\b/.test(text)) p.problems.push(`${where}: does not wait for cluster_state:ok`);
  if (!/REDIS_CLUSTER_NODES/.test(text)) p.problems.push(`${where}: the script must take its nodes from REDIS_CLUSTER_NODES (the list the check compares)`);
  return replicas;
}

/** The shape common to both: enough nodes for the primaries and their replicas. */
function checkCount(p: Part, where: string, nodes: number, replicas: number | undefined): void {
  const per = (replicas ?? 1) + 1;
  if (nodes < MIN_PRIMARIES * per) p.problems.push(`${where}: ${nodes} Redis node(s); the production shape is ${MIN_PRIMARIES} primaries with ${per - 1} replica(s) each (${MIN_PRIMARIES * per})`);
  else if (nodes % per !== 0) p.problems.push(`${where}: ${nodes} nodes do not split into primaries with ${per - 1} replica(s) each`);
}

function checkWait(p: Part, where: string, value: string | undefined, replicas: number | undefined): void {
  const n = Number(value ?? 0);
  if (!Number.isInteger(n) || n < 1) p.problems.push(`${where}: REDIS_WAIT_REPLICAS is ${value ?? 'unset'}: at least 1, or a primary's failover loses acknowledged writes`);
  else if (replicas !== undefined && n > replicas) p.problems.push(`${where}: REDIS_WAIT_REPLICAS ${n} > ${replicas} replica(s) per primary: no write could be acknowledged`);
}

function checkNodeArgs(p: Part, where: string, args: string[]): void {
  if (flag(args, '--cluster-enabled') !== 'yes') p.problems.push(`${where}: redis-server without --cluster-enabled yes`);
  if (!flag(args, '--cluster-config-file')) p.problems.push(`${where}: no --cluster-config-file (the node's identity and peers, kept on its volume)`);
  if (flag(args, '--appendonly') !== 'yes') p.problems.push(`${where}: persistence must be on (--appendonly yes)`);
}

export function checkComposeRedis(p: Part, services: ComposeService[]): void {
  const before = p.problems.length;
  const isNode = (s: ComposeService) => words(s.def.command).includes('redis-server');
  const nodes = services.filter(isNode);
  const names = nodes.map((s) => `${s.name}:${flag(words(s.def.command), '--port') ?? REDIS_PORT}`);
  for (const s of nodes) {
    const where = `compose service ${s.name}`;
    checkNodeArgs(p, where, words(s.def.command));
    const data = arr(s.def.volumes).some((v) => (typeof v === 'string' ? /^[\w.-]+:\/data(:|$)/.test(v) : obj(v).target === '/data' && obj(v).type !== 'bind'));
    if (!data) p.problems.push(`${where}: no named volume on /data (its append-only file and nodes.conf)`);
    if (s.def.healthcheck === undefined) p.problems.push(`${where}: no health check (the init step waits for every node to be healthy)`);
  }
  const dirs = new Set(nodes.flatMap((s) => arr(s.def.volumes).map((v) => (typeof v === 'string' ? v.split(':')[0] : str(obj(v).source)))));
  if (dirs.size < nodes.length) p.problems.push('compose: two Redis nodes share a volume');

  const inits = services.filter((s) => !isNode(s) && /--cluster\s+create/.test(words(s.def.command).join(' ')));
  let replicas: number | undefined;
  if (inits.length !== 1) p.problems.push(`compose: ${inits.length} services run \`redis-cli --cluster create\`; want one, run once`);
  for (const init of inits) {
    const where = `compose service ${init.name}`;
    replicas = initScript(words(init.def.command).join(' '), where, p);
    const listed = entries(init.env.REDIS_CLUSTER_NODES);
    if (!sameSet(listed, names)) p.problems.push(`${where}: REDIS_CLUSTER_NODES names ${listed.join(', ') || 'nothing'}, not every Redis node (${names.join(', ')})`);
    const deps = obj(init.def.depends_on);
    for (const n of nodes) if (obj(deps[n.name]).condition !== 'service_healthy') p.problems.push(`${where}: must wait for ${n.name} to be healthy (depends_on … condition: service_healthy)`);
    if (![undefined, 'no'].includes(str(init.def.restart))) p.problems.push(`${where}: a one-shot step: restart must be "no" (have ${str(init.def.restart)})`);
  }
  checkCount(p, 'compose', nodes.length, replicas);

  for (const s of services) {
    if (s.env.REDIS_URL !== undefined) p.problems.push(`compose service ${s.name}: REDIS_URL is set; the deployment runs on the Redis Cluster (REDIS_CLUSTER_NODES)`);
  }
  for (const s of services.filter((x) => x.role === 'worker' || (x.role && x.env.REDIS_CLUSTER_NODES !== undefined))) {
    const where = `compose service ${s.name}`;
    const listed = entries(s.env.REDIS_CLUSTER_NODES);
    if (!sameSet(listed, names)) p.problems.push(`${where}: REDIS_CLUSTER_NODES names ${listed.join(', ') || 'nothing'}, not every Redis node (${names.join(', ')})`);
    checkWait(p, where, s.env.REDIS_WAIT_REPLICAS, replicas);
    const dep = inits[0] ? obj(obj(s.def.depends_on)[inits[0].name]).condition : undefined;
    if (inits[0] && dep !== 'service_completed_successfully') p.problems.push(`${where}: must start after ${inits[0].name} (depends_on … condition: service_completed_successfully)`);
  }
  if (p.problems.length === before) p.notes.push(`Redis: a cluster of ${nodes.length} nodes (${nodes.length / ((replicas ?? 1) + 1)} primaries, ${replicas} replica(s) each), created by ${inits[0]?.name}, named in full by every worker's REDIS_CLUSTER_NODES, REDIS_WAIT_REPLICAS ≥ 1`);
}

/** The environment a container gets: its ConfigMaps (envFrom), then its own `env`. */
function containerEnv(c: Obj, objects: Obj[]): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const ef of arr(c.envFrom).map(obj)) {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && obj(o.metadata).name === obj(ef.configMapRef).name);
    for (const [k, v] of Object.entries(obj(cm?.data))) env[k] = str(v);
  }
  for (const e of arr(c.env).map(obj)) env[str(e.name) ?? ''] = str(e.value);
  return env;
}

const podSpec = (o: Obj) => obj(obj(obj(o.spec).template).spec);
const containers = (o: Obj) => arr(podSpec(o).containers).map(obj);
const isRedisImage = (c: Obj) => /^redis[:@]/.test(str(c.image) ?? '');

/** The text of a container's script: its command and args, and the ConfigMap files it mounts. */
function scriptText(o: Obj, c: Obj, objects: Obj[]): string {
  const parts = [...words(c.command), ...words(c.args)];
  for (const v of arr(podSpec(o).volumes).map(obj)) {
    const cm = objects.find((x) => x.kind === 'ConfigMap' && obj(x.metadata).name === obj(v.configMap).name);
    if (cm) parts.push(...Object.values(obj(cm.data)).map((d) => str(d) ?? ''));
  }
  return parts.join('\n');
}

/**
 * Kubernetes: the StatefulSet, its PDB and anti-affinity, the Job, and the REDIS_* settings every
 * rt container ends up with. `composeScript` (the compose init's script, `$$` read as `$`) must be
 * the Job's, so that the two cannot drift.
 */
export function checkK8sRedis(p: Part, objects: Obj[], composeScript?: string): void {
  const before = p.problems.length;
  const redisSets = objects.filter((o) => o.kind === 'StatefulSet' && containers(o).some(isRedisImage));
  const sts = redisSets.find((o) => containers(o).some((c) => flag([...words(c.command), ...words(c.args)], '--cluster-enabled') === 'yes'));
  for (const o of redisSets.filter((x) => x !== sts)) p.problems.push(`StatefulSet/${str(obj(o.metadata).name)}: a Redis that is not a cluster node beside the cluster`);
  if (!sts) {
    p.problems.push('Kubernetes: no Redis Cluster StatefulSet (redis-server --cluster-enabled yes)');
    return;
  }
  const name = str(obj(sts.metadata).name)!;
  const where = `StatefulSet/${name}`;
  const headless = str(obj(sts.spec).serviceName);
  const count = Number(obj(sts.spec).replicas ?? 1);
  const labels = obj(obj(obj(obj(sts.spec).template).metadata).labels);
  const pods = Array.from({ length: count }, (_, i) => `${name}-${i}.${headless}:${REDIS_PORT}`);
  const container = containers(sts).find(isRedisImage)!;
  const args = [...words(container.command), ...words(container.args)];
  checkNodeArgs(p, where, args);
  const dataDir = flag(args, '--dir') ?? '/data';
  const claims = arr(obj(sts.spec).volumeClaimTemplates).map((t) => str(obj(obj(t).metadata).name));
  const mount = arr(container.volumeMounts).map(obj).find((m) => m.mountPath === dataDir);
  if (!mount || !claims.includes(str(mount.name))) p.problems.push(`${where}: ${dataDir} (--dir) is not on a volumeClaimTemplate: a restarted pod would lose its data and its place in the cluster`);
  const svc = objects.find((o) => o.kind === 'Service' && obj(o.metadata).name === headless);
  if (svc && obj(svc.spec).publishNotReadyAddresses !== true) p.problems.push(`Service/${headless}: publishNotReadyAddresses must be true (the nodes are joined, and find each other, before they are ready)`);
  const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget' && Object.entries(obj(obj(obj(o.spec).selector).matchLabels)).every(([k, v]) => labels[k] === v));
  if (!pdb) p.problems.push(`${where}: no PodDisruptionBudget: a node drain could take a primary and its replica at once`);
  else if (Number(obj(pdb.spec).maxUnavailable ?? 0) !== 1) p.problems.push(`PodDisruptionBudget/${str(obj(pdb.metadata).name)}: maxUnavailable must be 1`);
  const anti = obj(obj(podSpec(sts).affinity).podAntiAffinity);
  const terms = [...arr(anti.requiredDuringSchedulingIgnoredDuringExecution), ...arr(anti.preferredDuringSchedulingIgnoredDuringExecution).map((t) => obj(t).podAffinityTerm)].map(obj);
  if (!terms.some((t) => t.topologyKey === 'kubernetes.io/hostname' && Object.entries(obj(obj(t.labelSelector).matchLabels)).every(([k, v]) => labels[k] === v))) {
    p.problems.push(`${where}: no pod anti-affinity on kubernetes.io/hostname: its pods could all land on one node`);
  }

  const jobs = objects.filter((o) => o.kind === 'Job' && containers(o).some((c) => /--cluster\s+create/.test(scriptText(o, c, objects))));
  let replicas: number | undefined;
  if (jobs.length !== 1) p.problems.push(`Kubernetes: ${jobs.length} Jobs run \`redis-cli --cluster create\`; want one`);
  for (const job of jobs) {
    const jw = `Job/${str(obj(job.metadata).name)}`;
    const c = containers(job).find((x) => /--cluster\s+create/.test(scriptText(job, x, objects)))!;
    const text = scriptText(job, c, objects);
    replicas = initScript(text, jw, p);
    const listed = entries(containerEnv(c, objects).REDIS_CLUSTER_NODES);
    if (!sameSet(listed, pods)) p.problems.push(`${jw}: REDIS_CLUSTER_NODES names ${listed.join(', ') || 'nothing'}, not every pod of ${where} (${pods.join(', ')})`);
    if (composeScript !== undefined && !text.includes(composeScript.trim())) p.problems.push(`${jw}: its script is not the compose redis-cluster-init's (keep the two the same)`);
  }
  checkCount(p, where, count, replicas);

  // Every rt container: the cluster, named in full (or by its headless Service), a replica waited for.
  for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'Job'].includes(str(x.kind) ?? ''))) {
    for (const c of containers(o)) {
      const env = containerEnv(c, objects);
      const cw = `${str(o.kind)}/${str(obj(o.metadata).name)} container ${str(c.name)}`;
      if (env.REDIS_URL !== undefined) p.problems.push(`${cw}: REDIS_URL is set; the deployment runs on the Redis Cluster (REDIS_CLUSTER_NODES)`);
      if (str(c.image) !== 'rt') continue;
      const listed = entries(env.REDIS_CLUSTER_NODES);
      if (!sameSet(listed, pods) && !sameSet(listed, [`${headless}:${REDIS_PORT}`])) {
        p.problems.push(`${cw}: REDIS_CLUSTER_NODES names ${listed.join(', ') || 'nothing'}, not every pod of ${where} (or ${headless}:${REDIS_PORT})`);
      }
      checkWait(p, cw, env.REDIS_WAIT_REPLICAS, replicas);
    }
  }
  for (const cm of objects.filter((o) => o.kind === 'ConfigMap' && obj(o.data).REDIS_URL !== undefined)) {
    p.problems.push(`ConfigMap/${str(obj(cm.metadata).name)}: REDIS_URL is set; the deployment runs on the Redis Cluster (REDIS_CLUSTER_NODES)`);
  }
  if (p.problems.length === before) p.notes.push(`Redis: ${where}, ${count} nodes (${count / ((replicas ?? 1) + 1)} primaries, ${replicas} replica(s) each), created by Job/${str(obj(jobs[0]?.metadata).name)} (the compose script), named in full by every rt container, REDIS_WAIT_REPLICAS ≥ 1`);
}

/** The script of compose's cluster-creating service as the shell sees it (`$$` is `$`). */
export function composeInitScript(services: ComposeService[]): string | undefined {
  const init = services.find((s) => !words(s.def.command).includes('redis-server') && /--cluster\s+create/.test(words(s.def.command).join(' ')));
  const cmd = init?.def.command;
  const text: Json | undefined = Array.isArray(cmd) ? cmd[cmd.length - 1] : cmd;
  return typeof text === 'string' ? text.replaceAll('$$', '$') : undefined;
}
