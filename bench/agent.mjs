/**
 * Preloaded into every Node process of every target (`--import`, or `NODE_OPTIONS=--import=…` for
 * the processes startCluster starts), so the benchmark can reach inside them without changing them:
 *
 * - SIGWINCH: a full garbage collection (through the in-process inspector; no --expose-gc needed),
 *   so that RSS per connection can be read without the garbage of the connection ramp.
 * - SIGUSR2, only with RT_BENCH_PROFILE_DIR set: the first starts V8's CPU profiler, the next stops
 *   it and writes `<dir>/prof-<pid>-<n>.cpuprofile` — a profile of exactly one measured phase
 *   (`--cpu-prof` would cover start-up and set-up too, and is not allowed in NODE_OPTIONS).
 *
 * Plain JavaScript: it loads before tsx. Until a signal arrives it does nothing at all.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import process from 'node:process';

let session;
const inspector = () => {
  if (!session) {
    session = new Session();
    session.connect();
  }
  return session;
};

process.on('SIGWINCH', () => {
  inspector().post('HeapProfiler.collectGarbage');
});

const dir = process.env.RT_BENCH_PROFILE_DIR;
if (dir) {
  let running = false;
  let n = 0;
  process.on('SIGUSR2', () => {
    const s = inspector();
    if (!running) {
      running = true;
      s.post('Profiler.enable', () => s.post('Profiler.setSamplingInterval', { interval: 500 }, () => s.post('Profiler.start')));
      return;
    }
    running = false;
    s.post('Profiler.stop', (err, result) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `prof-${process.pid}-${++n}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
