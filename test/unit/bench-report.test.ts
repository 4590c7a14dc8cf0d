import { describe, expect, it } from 'vitest';
import { checks, type Results, type SavedRun } from '../../bench/report.ts';
import { FULL } from '../../bench/scenarios.ts';

/** A saved run of scenario C with the given figures (three runs each). */
function runC(results: Results): SavedRun {
  return {
    version: 1,
    date: '2026-12-06T00:00:00Z',
    command: 'npm run bench',
    commit: 'test',
    machine: 'test',
    versions: {},
    params: { ...FULL, runs: 3, gateways: 2, workers: 2, sioNodes: 2 },
    targets: ['embedded', 'cluster'],
    scenarios: ['C'],
    results,
    missing: {},
    notes: [],
  };
}

const find = (run: SavedRun, start: string) => checks(run).find((c) => c.what.startsWith(start));

describe('bench targets: scenario C', () => {
  it('marks a rate ratio whose reference ran at the load generator’s limit, and judges the CPU per connection beside it', () => {
    const run = runC({
      embedded: { 'C.connRate': [6000, 6200, 6400], 'C.lg': [97, 98, 99], 'C.us.embedded': [120, 125, 130] },
      cluster: { 'C.connRate': [3300, 3400, 3500], 'C.lg': [40, 45, 50], 'C.us.gateway': [160, 170, 180], 'C.us.worker': [80, 90, 100], 'C.us.nats': [12, 12, 12], 'C.us.redis': [28, 28, 28] },
    });
    const rate = find(run, 'C connections/s with JWT: cluster ÷ embedded')!;
    expect(rate.measured).toBe(`${(3400 / 6200).toFixed(2)}× ⚠ (embedded at the load generator's limit)`);
    expect(rate.verdict).toBe('PASS');
    const cpu = find(run, 'C CPU-µs per connection: embedded ÷ cluster')!;
    // 125 ÷ (170 + 90 + 12 + 28): the medians of each role, summed.
    expect(cpu.measured).toBe('0.42× (125 ÷ 300)');
    expect(cpu.verdict).toBe('FAIL');
  });

  it('leaves a ratio unmarked when the reference was not client-bound, and shows a near miss with three digits', () => {
    const run = runC({
      embedded: { 'C.connRate': [5000, 5000, 5000], 'C.lg': [60, 70, 80], 'C.us.embedded': [150, 150, 150] },
      cluster: { 'C.connRate': [2498, 2498, 2498], 'C.lg': [40, 40, 40], 'C.us.gateway': [300, 300, 300] },
    });
    const rate = find(run, 'C connections/s with JWT: cluster ÷ embedded')!;
    expect(rate.measured).toBe('0.499×');
    expect(rate.verdict).toBe('FAIL');
    expect(find(run, 'C CPU-µs per connection')!.measured).toBe('0.50× (150 ÷ 300)');
    expect(find(run, 'C CPU-µs per connection')!.verdict).toBe('PASS');
  });

  it('shows a near miss of the CPU reading with three digits too', () => {
    const run = runC({ embedded: { 'C.connRate': [5000], 'C.us.embedded': [149.95] }, cluster: { 'C.connRate': [3000], 'C.us.gateway': [300] } });
    const cpu = find(run, 'C CPU-µs per connection')!;
    expect(cpu.measured).toBe('0.499× (150 ÷ 300)');
    expect(cpu.verdict).toBe('FAIL');
  });

  it('says n/a for the CPU reading when a run has no role figures', () => {
    const run = runC({ embedded: { 'C.connRate': [5000] }, cluster: { 'C.connRate': [3000] } });
    expect(find(run, 'C CPU-µs per connection')!.verdict).toBe('n/a');
  });
});
