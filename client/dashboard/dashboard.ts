/**
 * The live dashboard: joins the dashboard room (`?room=`, default `rt.dashboard`) through the SDK
 * and shows every gateway's `stats`, which each gateway publishes once a second. `?token=` for a
 * JWT (needed when the dashboard room is `private:`), otherwise an anonymous viewer name.
 */
import { RtClient } from '../index.ts';
import { formatTime } from '../ui/format.ts';

interface Stats {
  node: string;
  ts: string;
  connections: number;
  sse: number;
  rooms: number;
  messagesInPerSec: number;
  messagesOutPerSec: number;
  latencyMs: { p50: number; p99: number; max: number; count: number };
  busConnected: boolean;
}

const params = new URLSearchParams(location.search);
const roomName = params.get('room') ?? 'rt.dashboard';
const token = params.get('token') ?? undefined;
const WINDOW = 60;
const COLORS = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#c2255c', '#0c8599', '#f08c00', '#5c7cfa'];
const $ = (id: string) => document.getElementById(id)!;

const latest = new Map<string, { stats: Stats; seen: number }>();
const series = new Map<string, number[]>();

const client = new RtClient({
  url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
  ...(token ? { token } : { username: `dashboard-${Math.random().toString(36).slice(2, 8)}` }),
});
client.on('state', ({ state }) => {
  const el = $('conn');
  el.dataset.state = state;
  el.textContent = state;
});
const room = client.room(roomName);
room.on('stats', (frame) => {
  const s = frame as unknown as Stats;
  latest.set(s.node, { stats: s, seen: Date.now() });
});
// No timeout: the join waits for the connection, however long the server is away (as in the demo).
room.join({ timeoutMs: Infinity }).catch((err: Error) => {
  $('empty').textContent = `Cannot join ${roomName}: ${err.message}`;
});
client.connect().catch(() => {
  // The state pill shows why.
});

/** Once a second: forget silent gateways, add a point per gateway, redraw. */
setInterval(() => {
  const now = Date.now();
  for (const [node, { seen }] of latest) if (now - seen > 5000) latest.delete(node);
  for (const node of new Set([...series.keys(), ...latest.keys()])) {
    const points = series.get(node) ?? [];
    points.push(latest.get(node)?.stats.messagesOutPerSec ?? 0);
    if (points.length > WINDOW) points.shift();
    if (!latest.has(node) && points.every((p) => p === 0)) series.delete(node);
    else series.set(node, points);
  }
  render();
}, 1000);

// The canvas's bitmap follows its CSS size only when drawn: draw again when the window changes.
window.addEventListener('resize', () => drawChart());

function render(): void {
  const all = [...latest.values()].map((v) => v.stats).sort((a, b) => a.node.localeCompare(b.node));
  const sum = (f: (s: Stats) => number) => all.reduce((acc, s) => acc + f(s), 0);
  $('t-gateways').textContent = String(all.length);
  $('t-connections').textContent = sum((s) => s.connections).toLocaleString();
  $('t-in').textContent = sum((s) => s.messagesInPerSec).toLocaleString();
  $('t-out').textContent = sum((s) => s.messagesOutPerSec).toLocaleString();
  const p99 = Math.max(0, ...all.map((s) => s.latencyMs.p99));
  $('t-p99').textContent = all.some((s) => s.latencyMs.count > 0) ? `${p99.toFixed(1)} ms` : '–';
  $('empty').hidden = all.length > 0;

  const body = document.querySelector('#gateways tbody')!;
  body.replaceChildren(
    ...all.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.node = s.node;
      const cells = [s.node, s.connections, s.sse, s.rooms, s.messagesInPerSec, s.messagesOutPerSec, s.latencyMs.p50, s.latencyMs.p99, s.busConnected ? 'up' : 'down', formatTime(s.ts)];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = typeof c === 'number' ? c.toLocaleString() : c;
        if (c === 'down') td.className = 'down';
        tr.append(td);
      }
      return tr;
    }),
  );
  drawChart();
}

function drawChart(): void {
  const canvas = $('chart') as HTMLCanvasElement;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d')!;
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const pad = { l: 48, r: 8, t: 8, b: 18 };
  const max = Math.max(10, ...[...series.values()].flat());
  const top = niceCeil(max);
  const styles = getComputedStyle(document.body);
  g.strokeStyle = styles.getPropertyValue('--line');
  g.fillStyle = styles.getPropertyValue('--muted');
  g.font = '11px system-ui';
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ((height - pad.t - pad.b) * i) / 4;
    g.beginPath();
    g.moveTo(pad.l, y);
    g.lineTo(width - pad.r, y);
    g.stroke();
    // Quarters of a round number: 7.5 and 2.5 are shown as they are, not rounded to 8 and 3.
    g.fillText((top * (1 - i / 4)).toLocaleString(undefined, { maximumFractionDigits: 1 }), 4, y + 4);
  }
  const legend = $('legend');
  legend.replaceChildren();
  [...series.entries()].forEach(([node, points], i) => {
    const color = COLORS[i % COLORS.length]!;
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, k) => {
      const x = pad.l + ((width - pad.l - pad.r) * (k + WINDOW - points.length)) / (WINDOW - 1);
      const y = pad.t + (height - pad.t - pad.b) * (1 - p / top);
      if (k === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = color;
    item.append(swatch, node);
    legend.append(item);
  });
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
