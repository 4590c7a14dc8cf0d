/**
 * Kubernetes: every object in deploy/k8s validated by the JSON-schema validators of the npm package
 * `kubernetes-models` (generated from the Kubernetes OpenAPI schema); those do not reject unknown
 * fields, so the same objects are also type-checked against that package's TypeScript
 * declarations, where a misspelled or misplaced field is an error. kustomization.yaml is checked
 * against a small schema written here; when `kubectl` is on the PATH, `kubectl kustomize` must build
 * the directory and its output is validated the same way. Then cross-references: selectors, ports,
 * probes, HPA and PDB targets, Ingress backends, the drain against the grace period.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { K8S, ROOT, ajvErrors, arr, checkEntryPoint, obj, readYaml, rel, run, str, which, words, type Json, type Obj, type Part } from './common.ts';
import { checkK8sNats } from './nats.ts';
import { checkK8sRedis } from './redis.ts';

const require = createRequire(import.meta.url);
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

/** `composeInitScript`: the compose Redis Cluster init's script, which the Job's must equal. */
export async function checkKubernetes(p: Part, composeInitScript?: string): Promise<void> {
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
  checkK8sNats(
    p,
    objects.map((o) => o.doc),
  );
  checkK8sRedis(
    p,
    objects.map((o) => o.doc),
    composeInitScript,
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
