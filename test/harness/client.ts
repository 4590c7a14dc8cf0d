/**
 * A plain protocol client for tests: a WebSocket (the `ws` package), the `welcome`, requests with
 * ids that resolve on their answer, and a queue of every event with `next(predicate)`.
 * It speaks only the protocol of docs/protocol.md, like a third-party client would.
 */
import WebSocket from 'ws';
import { Inbox } from './wait.ts';

export type Frame = { type: string; [k: string]: unknown };

export interface ClientOptions {
  /** Query string parameters, e.g. { username: 'ann' }. */
  query?: Record<string, string>;
  headers?: Record<string, string>;
  protocols?: string[];
  /** Source address for the TCP connection (e.g. '127.2.0.1'). */
  localAddress?: string;
  timeoutMs?: number;
}

export class ClosedError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`closed ${code} ${reason}`);
  }
}

export class TestClient {
  private readonly inbox = new Inbox<Frame>();
  /** Events received and not taken by `next` yet, oldest first. */
  readonly events: Frame[] = this.inbox.items;
  private nextId = 1;
  closed?: { code: number; reason: string };
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];

  private constructor(readonly ws: WebSocket, readonly welcome: Frame) {}

  /** Connects and resolves after `welcome`; rejects with ClosedError if the server closes first. */
  static async connect(base: string, opts: ClientOptions = {}): Promise<TestClient> {
    const url = new URL('/ws', base.replace(/^http/, 'ws'));
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers, localAddress: opts.localAddress });
    const pre: Frame[] = [];
    const welcome = await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no welcome from ${url} within ${opts.timeoutMs ?? 5000} ms`)), opts.timeoutMs ?? 5000);
      ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as Frame;
        if (f.type === 'welcome') {
          clearTimeout(timer);
          resolve(f);
        } else pre.push(f);
      });
      ws.once('close', (code, reason) => {
        clearTimeout(timer);
        reject(new ClosedError(code, reason.toString()));
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`HTTP ${res.statusCode}`));
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    ws.removeAllListeners('message');
    ws.removeAllListeners('close');
    const client = new TestClient(ws, welcome);
    for (const f of pre) client.push(f);
    ws.on('message', (data, isBinary) => client.push(isBinary ? { type: '$binary' } : (JSON.parse(data.toString()) as Frame)));
    ws.on('close', (code, reason) => {
      client.closed = { code, reason: reason.toString() };
      for (const w of client.closeWaiters) w(client.closed);
      client.inbox.end(() => new ClosedError(code, reason.toString()));
    });
    return client;
  }

  get node(): string {
    return this.welcome.node as string;
  }

  get userId(): string {
    return (this.welcome.user as { id: string }).id;
  }

  private push(f: Frame): void {
    this.inbox.push(f);
  }

  /** The next frame (already received or coming) that matches; it is taken off the queue. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    return this.inbox.next(pred, timeoutMs);
  }

  /** Takes the next `n` frames of a type, in arrival order. */
  take(type: string, n: number, timeoutMs = 10_000): Promise<Frame[]> {
    return this.inbox.take((f) => f.type === type, n, timeoutMs);
  }

  /** Takes the next `n` frames that match, in arrival order. */
  takeMatching(pred: (f: Frame) => boolean, n: number, timeoutMs = 10_000): Promise<Frame[]> {
    return this.inbox.take(pred, n, timeoutMs);
  }

  /** Takes the frames that match, in arrival order, up to and including the first for which `last` holds. */
  takeUntil(pred: (f: Frame) => boolean, last: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame[]> {
    return this.inbox.takeUntil(pred, last, timeoutMs);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a request with a fresh id and resolves with its answer (`reply` or `error`, or `pong`). */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const id = this.nextId++;
    this.send({ ...frame, id });
    return this.next((f) => f.id === id && (f.type === 'reply' || f.type === 'error' || f.type === 'pong'), timeoutMs);
  }

  /** Like request, but fails unless the answer is a `reply`. */
  async ok(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const answer = await this.request(frame, timeoutMs);
    if (answer.type !== 'reply') throw new Error(`${JSON.stringify(frame)} answered ${JSON.stringify(answer)}`);
    return answer;
  }

  /** Resolves with the close code and reason once the connection closes. */
  waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  close(): void {
    if (!this.closed) this.ws.close(1000);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** Connects and returns the close of a connection the server refuses after the upgrade. */
export async function expectClosed(base: string, opts: ClientOptions): Promise<{ code: number; reason: string }> {
  try {
    const c = await TestClient.connect(base, opts);
    c.close();
    throw new Error('connection was accepted');
  } catch (err) {
    if (err instanceof ClosedError) return { code: err.code, reason: err.reason };
    throw err;
  }
}
