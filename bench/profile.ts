/**
 * Summary of a V8 `.cpuprofile` (node --cpu-prof): the functions with the most self time.
 *
 *   tsx bench/profile.ts <file.cpuprofile> [top]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * tsx compiles each module to one line, so a profile's positions are columns of that line. tsx keeps
 * the compiled code and its source map in its cache (`<tmpdir>/tsx-<uid>/`, JSON {code, map}); the
 * newest entry for a source file whose code has the profile's named functions at their columns is
 * the one the profiled process ran, and its map gives the TypeScript line.
 */
function tsxSourceMaps(nodes: ProfileNode[]): Map<string, SourceMap> {
  const wanted = new Map<string, ProfileNode['callFrame'][]>();
  for (const n of nodes) {
    const { url, functionName, lineNumber } = n.callFrame;
    if (!url.startsWith('file://') || !url.endsWith('.ts') || lineNumber !== 0) continue;
    const path = fileURLToPath(url);
    if (!wanted.has(path)) wanted.set(path, []);
    if (functionName && !functionName.startsWith('<')) wanted.get(path)!.push(n.callFrame);
  }
  const maps = new Map<string, SourceMap>();
  if (wanted.size === 0) return maps;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  let dir: string;
  let entries: { file: string; mtime: number }[];
  try {
    dir = join(tmpdir(), `tsx-${uid}`);
    entries = readdirSync(dir).map((f) => ({ file: join(dir, f), mtime: statSync(join(dir, f)).mtimeMs }));
  } catch {
    return maps;
  }
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const { file } of entries) {
    let cached: { code?: string; map?: { sources?: string[] } };
    try {
      cached = JSON.parse(readFileSync(file, 'utf8')) as typeof cached;
    } catch {
      continue;
    }
    const source = cached.map?.sources?.[0];
    if (!source || !cached.code || maps.has(source) || !wanted.has(source)) continue;
    const frames = wanted.get(source)!;
    // V8 puts a function at its parameter list, right after its name.
    const fits = frames.filter((f) => cached.code!.slice(Math.max(0, f.columnNumber - f.functionName.length - 24), f.columnNumber + 1).includes(f.functionName));
    if (frames.length > 0 && fits.length < frames.length * 0.9) continue;
    maps.set(source, new SourceMap(cached.map as ConstructorParameters<typeof SourceMap>[0]));
  }
  return maps;
}

export function summarizeProfile(file: string, top = 25): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const maps = tsxSourceMaps(prof.nodes);
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    let line = lineNumber + 1;
    const map = url.startsWith('file://') ? maps.get(fileURLToPath(url)) : undefined;
    if (map) {
      const entry = map.findEntry(lineNumber, columnNumber) as { originalLine?: number };
      if (entry.originalLine !== undefined) line = entry.originalLine + 1;
    }
    const where = url ? `${relative(ROOT, url.replace(/^file:\/\//, '')).replace(/^node_modules\//, '')}:${line}` : '';
    const key = `${functionName || '(anonymous)'}${where ? `  ${where}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const rows = [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [`total ${(total / 1e6).toFixed(2)} s sampled; self time:`];
  for (const [key, us] of rows) lines.push(`${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`);
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/profile.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(summarizeProfile(file, Number(process.argv[3] ?? 25)) + '\n');
}
