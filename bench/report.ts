/**
 * Turns the figures of all runs into the report: medians with min–max, ratios to raw uWS and to
 * Socket.IO, CPU of the load generator and of the servers, the targets with pass/fail, and
 * regressions against the previous `latest.json`.
 */
import type { ScenarioParams } from './scenarios.ts';
import type { TargetName } from './targets.ts';

export type Results = Partial<Record<TargetName, Record<string, number[]>>>;

export interface SavedRun {
  version: 1;
  date: string;
  command: string;
  commit: string;
  machine: string;
  versions: Record<string, string>;
  params: ScenarioParams & { runs: number; gateways: number; workers: number; sioNodes: number };
  targets: TargetName[];
  scenarios: string[];
  results: Results;
  /** Why a figure is missing: `target/scenario` → reason (n/a, failed: …). */
  missing: Record<string, string>;
  notes: string[];
}

type Unit = 'rate' | 'ms' | 'kib' | 'pct' | 'count';
type Better = 'higher' | 'lower';

export interface MetricDef {
  key: string;
  scenario: string;
  label: string;
  unit: Unit;
  better: Better;
  /** Show ratios to the references (not for fractions delivered). */
  ratio: boolean;
  /** Flag it when it gets worse (not for figures of the load generator itself). */
  track: boolean;
}

export function metricDefs(p: ScenarioParams): MetricDef[] {
  const m = (key: string, label: string, unit: Unit, better: Better, ratio = unit !== 'pct', track = true): MetricDef => ({
    key,
    scenario: key[0]!,
    label,
    unit,
    better,
    ratio,
    track,
  });
  const defs: MetricDef[] = [
    m('A.rate', `A fan-out 1 → ${p.members}: deliveries/s (window ${p.window})`, 'rate', 'higher'),
    m('Adeep.rate', `A fan-out 1 → ${p.members}: deliveries/s (deep window ${p.deepWindow})`, 'rate', 'higher'),
    m('A.delivered', `A delivered (window ${p.window})`, 'pct', 'higher'),
    m('Adeep.delivered', `A delivered (deep window ${p.deepWindow})`, 'pct', 'higher'),
    m('Adeep.refused', `A publishes refused \`overloaded\` (deep window ${p.deepWindow}; each sent again)`, 'count', 'lower', false, false),
    m('Adeep.refusedMs', `A mean ms to an \`overloaded\` answer (deep window ${p.deepWindow})`, 'ms', 'lower', false, false),
  ];
  for (const r of p.rates) {
    defs.push(
      m(`B${r}.p50`, `B ${r} msg/s → ${p.members}: p50 latency (ms)`, 'ms', 'lower'),
      m(`B${r}.p99`, `B ${r} msg/s → ${p.members}: p99 latency (ms)`, 'ms', 'lower'),
      m(`B${r}.max`, `B ${r} msg/s → ${p.members}: max latency (ms)`, 'ms', 'lower'),
      m(`B${r}.delivered`, `B ${r} msg/s → ${p.members}: delivered`, 'pct', 'higher'),
      m(`B${r}.lgDelay`, `B ${r} msg/s: load generator's own event-loop delay p99 (ms, included above)`, 'ms', 'lower', false, false),
    );
  }
  defs.push(
    m('C.rssPerConn', `C ${p.idleConnections} idle in ${p.idleRooms} rooms: RSS/connection of the socket-holding process(es), after a full GC (KiB)`, 'kib', 'lower'),
    m('C.rssNoGcPerConn', 'C the same before the GC (KiB)', 'kib', 'lower'),
    m('C.rssAllPerConn', 'C RSS/connection, all server processes, after a full GC (KiB)', 'kib', 'lower'),
    m('C.connRate', 'C connections/s (ours with a JWT each)', 'rate', 'higher'),
    m('D.rate', `D ${p.rooms} rooms × ${p.roomSize}, a publisher each: deliveries/s`, 'rate', 'higher'),
    m('D.delivered', 'D delivered', 'pct', 'higher'),
    m('D.refused', 'D publishes refused `overloaded` while measured (each sent again after its retryAfterMs)', 'count', 'lower', false, false),
    m('D.refusedMs', 'D mean ms from a publish to its `overloaded` answer', 'ms', 'lower', false, false),
    m('D.refusedMaxMs', 'D longest ms from a publish to its `overloaded` answer', 'ms', 'lower', false, false),
    m('E.store', `E notifications to ${p.rooms * p.roomSize} users: ms until 202 (stored)`, 'ms', 'lower'),
    m('E.deliver', `E ms until all ${p.rooms * p.roomSize} delivered`, 'ms', 'lower'),
  );
  return defs;
}

/** Phases with CPU readings, in table order. */
export function cpuPhases(p: ScenarioParams): { key: string; label: string }[] {
  return [
    { key: 'A', label: `A window ${p.window}` },
    { key: 'Adeep', label: `A window ${p.deepWindow}` },
    ...p.rates.map((r) => ({ key: `B${r}`, label: `B ${r} msg/s` })),
    { key: 'C', label: 'C connect ramp' },
    { key: 'D', label: 'D' },
    { key: 'E', label: 'E' },
  ];
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: number[] | undefined): Stat | undefined {
  const v = (values ?? []).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

export function fmt(unit: Unit, x: number): string {
  if (!Number.isFinite(x)) return '—';
  switch (unit) {
    case 'rate':
      return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)} k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0);
    case 'ms':
      return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
    case 'kib':
      return x.toFixed(2);
    case 'pct':
      return `${(x * 100).toFixed(x >= 0.9995 && x < 1 ? 3 : 2)} %`;
    case 'count':
      return x.toFixed(0);
  }
}

function cell(unit: Unit, s: Stat | undefined, missing?: string): string {
  if (!s) return missing ?? '—';
  if (s.n === 1 || s.min === s.max) return fmt(unit, s.median);
  return `${fmt(unit, s.median)} (${fmt(unit, s.min)}–${fmt(unit, s.max)})`;
}

const LABEL: Record<TargetName, string> = {
  'raw-uws': 'raw uWS',
  embedded: 'embedded',
  cluster: 'cluster',
  'cluster-redis-cluster': 'cluster on Redis Cluster',
  socketio: 'Socket.IO',
  'socketio-redis': 'Socket.IO + Redis',
};

function median(r: Results, t: TargetName, key: string): number | undefined {
  return stat(r[t]?.[key])?.median;
}

function ratio(r: Results, a: TargetName, b: TargetName, key: string): string {
  const x = median(r, a, key);
  const y = median(r, b, key);
  if (x === undefined || y === undefined || y === 0) return '';
  return `${(x / y).toFixed(2)}×`;
}

function missingFor(run: SavedRun, t: TargetName, scenario: string): string | undefined {
  return run.missing[`${t}/${scenario}`];
}

/** The main results table: one row per metric, one column per target, then the ratios. */
export function resultsTable(run: SavedRun): string {
  const defs = metricDefs(run.params);
  const targets = run.targets;
  const ratios: [TargetName, TargetName, string][] = [
    ['embedded', 'raw-uws', 'emb ÷ raw'],
    ['embedded', 'socketio', 'emb ÷ SIO'],
    ['cluster', 'raw-uws', 'cl ÷ raw'],
    ['cluster', 'socketio', 'cl ÷ SIO'],
    ['cluster', 'socketio-redis', 'cl ÷ SIO+R'],
  ].filter(([a, b]) => targets.includes(a as TargetName) && targets.includes(b as TargetName)) as [TargetName, TargetName, string][];
  const head = ['Scenario / metric', ...targets.map((t) => LABEL[t]), ...ratios.map((x) => x[2])];
  const rows = [head, head.map(() => '---')];
  for (const d of defs) {
    if (!run.scenarios.includes(d.scenario)) continue;
    if (targets.every((t) => !run.results[t]?.[d.key]?.length)) {
      const reasons = targets.map((t) => missingFor(run, t, d.scenario)).filter(Boolean);
      if (reasons.length === 0) continue;
    }
    const phase = d.key.split('.')[0]!;
    const clientBound = (t: TargetName) => d.unit === 'rate' && (median(run.results, t, `${phase}.lg`) ?? 0) >= 90;
    rows.push([
      d.label,
      ...targets.map((t) => cell(d.unit, stat(run.results[t]?.[d.key]), missingFor(run, t, d.scenario)) + (clientBound(t) ? ' ⚠' : '')),
      ...ratios.map(([a, b]) => (d.ratio ? ratio(run.results, a, b, d.key) : '')),
    ]);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** CPU of the load generator, of the servers and of everything else (median over runs), per phase and target. */
export function cpuTable(run: SavedRun): string {
  const head = ['Phase', ...run.targets.map((t) => LABEL[t])];
  const rows = [head, head.map(() => '---')];
  for (const ph of cpuPhases(run.params)) {
    if (!run.scenarios.includes(ph.key[0]!)) continue;
    const cells = run.targets.map((t) => {
      const lg = median(run.results, t, `${ph.key}.lg`);
      const srv = median(run.results, t, `${ph.key}.srv`);
      const oth = median(run.results, t, `${ph.key}.oth`);
      if (lg === undefined) return '—';
      const n = (x: number | undefined) => x?.toFixed(0) ?? '?';
      return `${lg >= 90 ? '⚠ ' : ''}${n(lg)} / ${n(srv)} / ${oth !== undefined && oth >= 30 ? '⚠ ' : ''}${n(oth)}`;
    });
    if (cells.every((c) => c === '—')) continue;
    rows.push([ph.label, ...cells]);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Roles in the order the CPU-per-delivery table lists them. */
const ROLE_ORDER = ['embedded', 'gateway', 'worker', 'nats', 'redis', 'node', 'server'];

/** A target's CPU-µs of a phase summed over its roles (each the median over runs); undefined without role figures. */
function roleTotal(r: Results, t: TargetName, phase: string): number | undefined {
  const medians = ROLE_ORDER.map((role) => median(r, t, `${phase}.us.${role}`)).filter((v) => v !== undefined);
  return medians.length ? medians.reduce((sum, v) => sum + v, 0) : undefined;
}

/**
 * CPU-µs per delivered message of each role (median over runs), per phase and target: the figures
 * the capacity model in docs/scaling.md is built from, so that each run can be checked against it.
 */
export function cpuPerDeliveryTable(run: SavedRun): string {
  const phases = [
    { key: 'A', label: `A window ${run.params.window}` },
    { key: 'Adeep', label: `A window ${run.params.deepWindow}` },
    { key: 'C', label: 'C connect ramp (per connection)' },
    { key: 'D', label: 'D' },
  ].filter((ph) => run.scenarios.includes(ph.key[0]!));
  const head = ['Phase', ...run.targets.map((t) => LABEL[t])];
  const rows = [head, head.map(() => '---')];
  for (const ph of phases) {
    const cells = run.targets.map((t) => {
      const figures = run.results[t] ?? {};
      const parts: string[] = [];
      for (const role of ROLE_ORDER) {
        const v = stat(figures[`${ph.key}.us.${role}`])?.median;
        if (v !== undefined) parts.push(`${role} ${v.toFixed(2)}`);
      }
      if (parts.length === 0) return '—';
      return `${parts.join(' · ')} (total ${roleTotal(run.results, t, ph.key)!.toFixed(2)})`;
    });
    if (cells.every((c) => c === '—')) continue;
    rows.push([ph.label, ...cells]);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export interface Check {
  what: string;
  required: string;
  measured: string;
  verdict: 'PASS' | 'FAIL' | 'n/a';
}

/** A ratio to two decimals; a near miss that would round up to its minimum, cut to three (0.4996 → 0.499). */
function shown(v: number, min: number): string {
  return v < min && Number(v.toFixed(2)) >= min ? (Math.floor(v * 1000) / 1000).toFixed(3) : v.toFixed(2);
}

/** The targets, judged on the medians of this run. */
export function checks(run: SavedRun): Check[] {
  const r = run.results;
  const out: Check[] = [];
  const q = (a: TargetName, b: TargetName, key: string) => {
    const x = median(r, a, key);
    const y = median(r, b, key);
    return x === undefined || y === undefined || y === 0 ? undefined : x / y;
  };
  // A rate ratio whose reference ran at the load generator's limit (≥ 90 % of its core) is marked ⚠:
  // the reference could go faster, so the ratio may be too high.
  const ratioCheck = (what: string, v: number | undefined, min: number, phase?: string, reference?: TargetName) => {
    const bound = phase && reference && (median(r, reference, `${phase}.lg`) ?? 0) >= 90 ? ` ⚠ (${LABEL[reference]} at the load generator's limit)` : '';
    out.push({ what, required: `≥ ${min}×`, measured: v === undefined ? '—' : `${shown(v, min)}×${bound}`, verdict: v === undefined ? 'n/a' : v >= min ? 'PASS' : 'FAIL' });
  };
  const absCheck = (what: string, v: number | undefined, ok: (x: number) => boolean, required: string, show: (x: number) => string) =>
    out.push({ what, required, measured: v === undefined ? '—' : show(v), verdict: v === undefined ? 'n/a' : ok(v) ? 'PASS' : 'FAIL' });
  const has = (s: string) => run.scenarios.includes(s);
  if (has('A')) {
    ratioCheck(`A embedded ÷ raw uWS (window ${run.params.window})`, q('embedded', 'raw-uws', 'A.rate'), 0.5, 'A', 'raw-uws');
    ratioCheck('A embedded ÷ Socket.IO', q('embedded', 'socketio', 'A.rate'), 8, 'A', 'socketio');
    ratioCheck('A cluster ÷ raw uWS', q('cluster', 'raw-uws', 'A.rate'), 0.25, 'A', 'raw-uws');
    for (const t of ['embedded', 'cluster'] as TargetName[]) {
      const deep = median(r, t, 'Adeep.rate');
      const normal = median(r, t, 'A.rate');
      absCheck(
        `A ${t}: deep window ${run.params.deepWindow} ÷ window ${run.params.window} (no cliff; our reading: ≥ 0.8)`,
        deep !== undefined && normal ? deep / normal : undefined,
        (x) => x >= 0.8,
        '≥ 0.8',
        (x) => x.toFixed(2),
      );
    }
  }
  const top = Math.max(...run.params.rates);
  if (has('B')) {
    for (const [t, limit] of [
      ['embedded', 20],
      ['cluster', 50],
    ] as [TargetName, number][]) {
      absCheck(`B ${top} msg/s ${t}: delivered`, median(r, t, `B${top}.delivered`), (x) => x >= 1, '100 %', (x) => fmt('pct', x));
      absCheck(`B ${top} msg/s ${t}: p99`, median(r, t, `B${top}.p99`), (x) => x < limit, `< ${limit} ms`, (x) => `${fmt('ms', x)} ms`);
    }
  }
  if (has('C')) {
    absCheck('C RSS per idle connection on a gateway (cluster; after a full GC)', median(r, 'cluster', 'C.rssPerConn'), (x) => x <= 3, '≤ 3 KiB', (x) => `${x.toFixed(2)} KiB`);
    absCheck('C RSS per idle connection, embedded process (gateway + worker + store; after a full GC)', median(r, 'embedded', 'C.rssPerConn'), (x) => x <= 3, '≤ 3 KiB', (x) => `${x.toFixed(2)} KiB`);
    ratioCheck('C connections/s with JWT: embedded ÷ raw uWS', q('embedded', 'raw-uws', 'C.connRate'), 0.5, 'C', 'raw-uws');
    ratioCheck('C connections/s with JWT: cluster ÷ embedded', q('cluster', 'embedded', 'C.connRate'), 0.5, 'C', 'embedded');
    // The same ratio read from the CPU each connect costs: what the rates would give if the
    // servers' shared core were the only limit (in C the load generator is often the embedded
    // mode's limit, and then the rate ratio flatters the cluster).
    const clusterUs = roleTotal(r, 'cluster', 'C');
    const embeddedUs = roleTotal(r, 'embedded', 'C');
    absCheck(
      'C CPU-µs per connection: embedded ÷ cluster (the connections/s ratio on a core the servers saturate; our reading)',
      clusterUs && embeddedUs !== undefined ? embeddedUs / clusterUs : undefined,
      (x) => x >= 0.5,
      '≥ 0.5×',
      (x) => `${shown(x, 0.5)}× (${embeddedUs!.toFixed(0)} ÷ ${clusterUs!.toFixed(0)})`,
    );
  }
  if (has('D')) {
    ratioCheck('D embedded ÷ raw uWS', q('embedded', 'raw-uws', 'D.rate'), 0.3, 'D', 'raw-uws');
    ratioCheck('D cluster ÷ Socket.IO with Redis adapter', q('cluster', 'socketio-redis', 'D.rate'), 2, 'D', 'socketio-redis');
    ratioCheck('D cluster ÷ embedded', q('cluster', 'embedded', 'D.rate'), 0.5, 'D', 'embedded');
    for (const t of ['embedded', 'cluster'] as TargetName[]) {
      const errors = stat(r[t]?.['D.errors'])?.max;
      const delivered = stat(r[t]?.['D.delivered'])?.min;
      absCheck(
        `D ${t}: every publish acknowledged and delivered (errors other than \`overloaded\`, worst run)`,
        errors === undefined || delivered === undefined ? undefined : errors === 0 && delivered >= 1 ? 1 : 0,
        (x) => x === 1,
        '0 errors, 100 %',
        () => `${errors} errors, ${fmt('pct', delivered!)}`,
      );
      const refusedMs = stat(r[t]?.['D.refusedMaxMs'])?.max;
      absCheck(`D ${t}: \`overloaded\` answered in milliseconds (longest, all runs)`, refusedMs, (x) => x < 100, '< 100 ms', (x) => `${fmt('ms', x)} ms`);
    }
  }
  return out;
}

export function checksTable(list: Check[]): string {
  const rows = ['| Target | Required | Measured (medians) | Verdict |', '| --- | --- | --- | --- |'];
  for (const c of list) rows.push(`| ${c.what} | ${c.required} | ${c.measured} | ${c.verdict === 'FAIL' ? '**FAIL**' : c.verdict} |`);
  return rows.join('\n');
}

export interface Regression {
  target: TargetName;
  metric: string;
  before: number;
  now: number;
  change: number;
}

/**
 * Metrics (with a direction) whose median got worse by more than `threshold` since `prev` and lies
 * outside the previous run's min–max: a shared machine moves single figures by more than 10 %, and
 * a change inside the spread already seen is not evidence of a regression.
 */
export function regressions(prev: SavedRun, cur: SavedRun, threshold = 0.1): { worse: Regression[]; compared: number } {
  const defs = metricDefs(cur.params);
  const worse: Regression[] = [];
  let compared = 0;
  for (const t of cur.targets) {
    for (const d of defs) {
      if (!d.track) continue;
      const was = stat(prev.results[t]?.[d.key]);
      const before = was?.median;
      const now = median(cur.results, t, d.key);
      if (!was || before === undefined || now === undefined || before === 0) continue;
      compared++;
      const change = (now - before) / before;
      const bad = d.better === 'higher' ? change < -threshold && now < was.min : change > threshold && now > was.max;
      // Fractions delivered: only a drop of more than a tenth of a percent point matters.
      if (d.unit === 'pct' ? before - now > 0.001 : bad) worse.push({ target: t, metric: d.label, before, now, change });
    }
  }
  return { worse, compared };
}

export function regressionsText(prev: SavedRun | undefined, cur: SavedRun): string {
  if (!prev) return 'No previous `bench/results/latest.json`: nothing to compare with.';
  const { worse, compared } = regressions(prev, cur);
  const differs = (['members', 'window', 'deepWindow', 'measureMs', 'latencyMs', 'idleConnections', 'rooms', 'roomSize', 'gateways', 'workers'] as const).filter(
    (k) => prev.params[k] !== cur.params[k],
  );
  const head =
    `Previous run: ${prev.date} (commit ${prev.commit}, \`${prev.command}\`). ${compared} figures compared; worse by more than 10 % and outside the previous min–max: ${worse.length === 0 ? 'none' : worse.length}.` +
    (differs.length ? ` Parameters differ (${differs.join(', ')}): the comparison is only indicative.` : '');
  if (worse.length === 0) return head;
  const defs = new Map(metricDefs(cur.params).map((d) => [d.label, d]));
  const rows = ['| Target | Metric | Before | Now | Change |', '| --- | --- | --- | --- | --- |'];
  for (const w of worse) {
    const unit = defs.get(w.metric)?.unit ?? 'count';
    rows.push(`| ${LABEL[w.target]} | ${w.metric} | ${fmt(unit, w.before)} | ${fmt(unit, w.now)} | ${(w.change * 100).toFixed(1)} % |`);
  }
  return `${head}\n\n${rows.join('\n')}`;
}

export function targetLabel(t: TargetName): string {
  return LABEL[t];
}
