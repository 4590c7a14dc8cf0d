/**
 * A WebSocket stand-in for SDK unit tests: the test plays the server. Every instance is recorded
 * in `FakeWebSocket.instances`; frames the SDK sends are parsed into `sent`.
 * It implements only what the SDK uses (the browser API's `on*` handlers, `send`, `close`).
 */
export type Frame = { type: string; id?: number | string; [k: string]: unknown };

export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  /** The most recent socket. */
  static get last(): FakeWebSocket {
    const ws = FakeWebSocket.instances.at(-1);
    if (!ws) throw new Error('no WebSocket was created');
    return ws;
  }

  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Frame[] = [];
  /** Set when the SDK closed this socket. */
  closedByClient: { code?: number; reason?: string } | undefined;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
  }

  /** A query parameter of the URL the SDK connected to. */
  param(name: string): string | null {
    return new URL(this.url).searchParams.get(name);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`send on a socket in state ${this.readyState}`);
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
    if (this.readyState === 3) return;
    this.readyState = 3;
    const onclose = this.onclose;
    queueMicrotask(() => onclose?.({ code: code ?? 1005, reason: reason ?? '' }));
  }

  // ---- the server's side ----

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame: object): void {
    if (this.readyState !== 1) throw new Error('receive on a socket that is not open');
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Opens the socket and sends a welcome. */
  welcome(fields: Record<string, unknown> = {}): void {
    if (this.readyState === 0) this.open();
    this.receive({
      type: 'welcome',
      connectionId: `c${FakeWebSocket.instances.indexOf(this)}`,
      node: 'gw1',
      sessionId: 'sess-1',
      user: { id: 'ann', name: 'ann' },
      resumed: false,
      rooms: [],
      unread: 0,
      heartbeat: 25_000,
      ...fields,
    });
  }

  /** The server closes the connection (or the network drops it: 1006). */
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Frames sent of a type, in order. */
  requests(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }

  /** The last frame sent of a type; fails when there is none. */
  lastRequest(type: string): Frame {
    const f = this.requests(type).at(-1);
    if (!f) throw new Error(`no ${type} was sent; sent: ${JSON.stringify(this.sent)}`);
    return f;
  }

  reply(request: Frame, fields: Record<string, unknown> = {}): void {
    this.receive({ type: 'reply', id: request.id, ...fields });
  }

  error(request: Frame, code: string, message = code, fields: Record<string, unknown> = {}): void {
    this.receive({ type: 'error', id: request.id, code, message, ...fields });
  }
}

/** A room message as the server sends it. */
export function message(room: string, seq: number, content = `m${seq}`, user = { id: 'bob', name: 'bob' }): Frame {
  return { type: 'message', room, seq, user, content, ts: new Date(1_700_000_000_000 + seq).toISOString() };
}
