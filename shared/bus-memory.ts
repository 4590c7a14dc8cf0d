/**
 * The in-process Bus, used by the embedded mode (gateway and worker in one process).
 *
 * A `MemoryHub` plays the NATS server; each `MemoryBus` is one connection to it. The embedded mode
 * gives the gateway and the worker one handle each on a shared hub, so that closing or draining one
 * side behaves as it would over NATS:
 *
 *   const hub = new MemoryHub();
 *   const gatewayBus = new MemoryBus(hub);
 *   const workerBus = new MemoryBus(hub);
 *
 * Semantics follow NATS core, so that code tested in embedded mode behaves the same distributed:
 * - Deliveries are asynchronous: `publish` and `request` only enqueue, and one FIFO queue per hub is
 *   dispatched from a microtask. A subscriber is never called from inside `publish` (no re-entrancy),
 *   and FIFO dispatch keeps every publisher's order on every subject (in fact the hub's total order).
 * - Subjects match exactly, except that a subscription to `prefix.>` matches every subject with that
 *   prefix and one or more further tokens (the only NATS wildcard the server uses).
 * - A message reaches every plain subscriber and one member of each queue group on its subject
 *   (round robin). A request is such a message with a reply: the first answer settles it. As in
 *   NATS, plain subscribers on a request subject see the request, and a published message on a
 *   served subject runs one handler whose answer goes nowhere.
 * - The subscribers of a message are fixed when it is published (a later `subscribe` does not see
 *   it) and checked again when it is dispatched (an `unsubscribe` stops delivery at once, even of
 *   messages already queued). The queue group member is chosen at dispatch, so a request queued
 *   while a member leaves goes to another member instead of being lost.
 * - Payloads are passed by reference, never copied: receivers must not mutate them.
 */
import type { Logger } from './log.ts';
import { BusError, type Bus, type BusSubscription, type RequestHandler } from './bus.ts';

/** Counters for metrics; they only grow. */
export interface MemoryBusStats {
  /** Messages published after `close()`, dropped (publish is at most once). */
  droppedPublishes: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Subscriber callbacks that threw (the error is logged and the other subscribers still run). */
  listenerErrors: number;
}

interface Listener {
  active: boolean;
  readonly owner: MemoryBus;
  readonly onMessage: (data: Uint8Array, subject: string) => void;
}

interface Member {
  active: boolean;
  readonly owner: MemoryBus;
  readonly handler: RequestHandler;
}

interface Group {
  /** Replaced, never mutated, so that a dispatch in progress sees a stable list. */
  members: readonly Member[];
  next: number;
}

interface Entry {
  /** Copy-on-write: `publish` captures the current array without copying it. */
  listeners: readonly Listener[];
  groups: Map<string, Group>;
}

/** The requester's side of a request: settles exactly once. */
interface Reply {
  settled: boolean;
  readonly owner: MemoryBus;
  resolve(data: Uint8Array): void;
  reject(err: BusError): void;
}

type Job =
  | { kind: 'msg'; subject: string; data: Uint8Array; listeners: readonly Listener[]; reply: Reply | undefined }
  | { kind: 'flush'; done: () => void };

export class MemoryHub {
  readonly #entries = new Map<string, Entry>();
  /** Subscriptions ending in `>` (NATS: one or more further tokens), by the prefix before it. */
  readonly #wild = new Map<string, Entry>();
  #queue: Job[] = [];
  #scheduled = false;

  /** @internal */
  enqueue(job: Job): void {
    this.#queue.push(job);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#dispatch());
    }
  }

  /** @internal */
  listenersOf(subject: string): readonly Listener[] {
    const exact = this.#entries.get(subject)?.listeners ?? [];
    if (this.#wild.size === 0) return exact;
    let out = exact;
    for (const [prefix, e] of this.#wild) {
      if (subject.length > prefix.length && subject.startsWith(prefix) && e.listeners.length > 0) out = [...out, ...e.listeners];
    }
    return out;
  }

  /** @internal True when anything at all listens on `subject` (NATS: "has interest"). */
  hasInterest(subject: string): boolean {
    const e = this.#entries.get(subject);
    return e !== undefined && (e.listeners.length > 0 || e.groups.size > 0);
  }

  /** @internal */
  addListener(subject: string, l: Listener): void {
    if (subject.endsWith('.>')) {
      const prefix = subject.slice(0, -1);
      const w = this.#wild.get(prefix) ?? { listeners: [], groups: new Map() };
      w.listeners = [...w.listeners, l];
      this.#wild.set(prefix, w);
      return;
    }
    const e = this.#entry(subject);
    e.listeners = [...e.listeners, l];
  }

  /** @internal */
  removeListener(subject: string, l: Listener): void {
    l.active = false;
    if (subject.endsWith('.>')) {
      const prefix = subject.slice(0, -1);
      const w = this.#wild.get(prefix);
      if (!w) return;
      w.listeners = w.listeners.filter((x) => x !== l);
      if (w.listeners.length === 0) this.#wild.delete(prefix);
      return;
    }
    const e = this.#entries.get(subject);
    if (!e) return;
    e.listeners = e.listeners.filter((x) => x !== l);
    this.#prune(subject, e);
  }

  /** @internal */
  addMember(subject: string, queue: string, m: Member): void {
    const e = this.#entry(subject);
    const g = e.groups.get(queue);
    if (g) g.members = [...g.members, m];
    else e.groups.set(queue, { members: [m], next: 0 });
  }

  /** @internal */
  removeMember(subject: string, queue: string, m: Member): void {
    m.active = false;
    const e = this.#entries.get(subject);
    const g = e?.groups.get(queue);
    if (!e || !g) return;
    g.members = g.members.filter((x) => x !== m);
    if (g.members.length === 0) e.groups.delete(queue);
    this.#prune(subject, e);
  }

  #entry(subject: string): Entry {
    let e = this.#entries.get(subject);
    if (!e) {
      e = { listeners: [], groups: new Map() };
      this.#entries.set(subject, e);
    }
    return e;
  }

  #prune(subject: string, e: Entry): void {
    if (e.listeners.length === 0 && e.groups.size === 0) this.#entries.delete(subject);
  }

  /**
   * Runs every queued job, including those enqueued by the callbacks it runs (appended to the same
   * loop, never run re-entrantly). The queue is swapped out first so that a long burst cannot keep
   * one dispatch running with an ever-growing array.
   */
  #dispatch(): void {
    try {
      while (this.#queue.length > 0) {
        const jobs = this.#queue;
        this.#queue = [];
        for (const job of jobs) {
          if (job.kind === 'flush') job.done();
          else this.#deliver(job.subject, job.data, job.listeners, job.reply);
        }
      }
    } finally {
      // Callbacks catch their own errors; this only keeps the hub alive if that ever fails.
      this.#scheduled = false;
      if (this.#queue.length > 0) {
        this.#scheduled = true;
        queueMicrotask(() => this.#dispatch());
      }
    }
  }

  #deliver(subject: string, data: Uint8Array, listeners: readonly Listener[], reply: Reply | undefined): void {
    if (reply?.settled) return;
    for (const l of listeners) {
      if (l.active) l.owner.runListener(l, data, subject);
    }
    const groups = this.#entries.get(subject)?.groups;
    let served = false;
    if (groups) {
      for (const g of groups.values()) {
        const m = g.members[g.next % g.members.length];
        g.next = (g.next + 1) % g.members.length;
        if (!m) continue;
        served = true;
        m.owner.runHandler(m, data, subject, reply);
      }
    }
    // Interest vanished between request and dispatch: answer like the NATS server would.
    if (reply && !served && listeners.length === 0) {
      reply.reject(new BusError('no_responders', `no responders on ${subject}`));
    }
  }
}

export class MemoryBus implements Bus {
  readonly stats: MemoryBusStats = { droppedPublishes: 0, handlerErrors: 0, listenerErrors: 0 };
  readonly hub: MemoryHub;
  readonly #log: Logger | undefined;
  readonly #drainTimeoutMs: number;
  #closed = false;
  #draining: Promise<void> | undefined;
  readonly #listeners = new Map<Listener, string>();
  readonly #members = new Map<Member, { subject: string; queue: string }>();
  readonly #requests = new Set<Reply>();
  readonly #inFlight = new Set<Promise<void>>();

  /** Without a hub, the bus gets a private one (fine when one handle serves the whole process). */
  constructor(hub: MemoryHub = new MemoryHub(), opts: { logger?: Logger; drainTimeoutMs?: number } = {}) {
    this.hub = hub;
    this.#log = opts.logger;
    this.#drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
  }

  get connected(): boolean {
    return !this.#closed;
  }

  /** An in-process bus never drops its connection: nothing to tell. */
  onReconnect(): void {}

  publish(subject: string, data: Uint8Array): void {
    if (this.#closed) {
      this.stats.droppedPublishes++;
      return;
    }
    this.hub.enqueue({ kind: 'msg', subject, data, listeners: this.hub.listenersOf(subject), reply: undefined });
  }

  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string) => void): BusSubscription {
    this.#assertOpen();
    const l: Listener = { active: true, owner: this, onMessage };
    this.hub.addListener(subject, l);
    this.#listeners.set(l, subject);
    return {
      unsubscribe: () => {
        if (!this.#listeners.delete(l)) return;
        this.hub.removeListener(subject, l);
      },
    };
  }

  serve(subject: string, queue: string, handler: RequestHandler): BusSubscription {
    this.#assertOpen();
    const m: Member = { active: true, owner: this, handler };
    this.hub.addMember(subject, queue, m);
    this.#members.set(m, { subject, queue });
    return {
      unsubscribe: () => {
        if (!this.#members.delete(m)) return;
        this.hub.removeMember(subject, queue, m);
      },
    };
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new BusError('closed', 'bus is closed'));
    if (!this.hub.hasInterest(subject)) {
      return Promise.reject(new BusError('no_responders', `no responders on ${subject}`));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const settle = (): boolean => {
        if (reply.settled) return false;
        reply.settled = true;
        clearTimeout(timer);
        this.#requests.delete(reply);
        return true;
      };
      const reply: Reply = {
        settled: false,
        owner: this,
        resolve: (d) => settle() && resolve(d),
        reject: (e) => settle() && reject(e),
      };
      const timer = setTimeout(
        () => reply.reject(new BusError('timeout', `no answer on ${subject} within ${timeoutMs} ms`)),
        Math.max(1, timeoutMs),
      );
      this.#requests.add(reply);
      this.hub.enqueue({ kind: 'msg', subject, data, listeners: this.hub.listenersOf(subject), reply });
    });
  }

  /** Resolves once every message enqueued before the call has been dispatched. */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(new BusError('closed', 'bus is closed'));
    return new Promise((done) => this.hub.enqueue({ kind: 'flush', done }));
  }

  drain(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#draining ??= this.#drain();
    return this.#draining;
  }

  async #drain(): Promise<void> {
    for (const [m, { subject, queue }] of this.#members) this.hub.removeMember(subject, queue, m);
    this.#members.clear();
    for (const [l, subject] of this.#listeners) this.hub.removeListener(subject, l);
    this.#listeners.clear();
    // Handlers in flight answer; one that never settles is abandoned after drainTimeoutMs.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((r) => {
      timer = setTimeout(r, this.#drainTimeoutMs);
    });
    await Promise.race([Promise.all(this.#inFlight), deadline]);
    clearTimeout(timer);
    if (this.#inFlight.size > 0) this.#log?.warn({ inFlight: this.#inFlight.size }, 'bus drain timed out; closing');
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [m, { subject, queue }] of this.#members) this.hub.removeMember(subject, queue, m);
    this.#members.clear();
    for (const [l, subject] of this.#listeners) this.hub.removeListener(subject, l);
    this.#listeners.clear();
    for (const r of [...this.#requests]) r.reject(new BusError('closed', 'bus closed while the request was in flight'));
  }

  /** @internal Called by the hub's dispatch loop. */
  runListener(l: Listener, data: Uint8Array, subject: string): void {
    try {
      l.onMessage(data, subject);
    } catch (err) {
      this.stats.listenerErrors++;
      this.#log?.error({ err, subject }, 'bus subscriber threw');
    }
  }

  /** @internal Called by the hub's dispatch loop; the answer goes to `reply` if there is one. */
  runHandler(m: Member, data: Uint8Array, subject: string, reply: Reply | undefined): void {
    // As over NATS, a bus closed while its handler runs cannot answer: the requester times out
    // (what the gateway sees when a worker dies mid-request). `drain()` is the graceful way.
    const run = (async () => m.handler(data))().then(
      (answer) => {
        if (!this.#closed) reply?.resolve(answer);
      },
      (err: unknown) => {
        this.stats.handlerErrors++;
        this.#log?.error({ err, subject }, 'bus handler failed');
        if (!this.#closed) reply?.reject(new BusError('handler', `handler failed on ${subject}: ${errorMessage(err)}`));
      },
    );
    const tracked = run.then(() => {
      this.#inFlight.delete(tracked);
    });
    this.#inFlight.add(tracked);
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusError('closed', 'bus is closed');
    if (this.#draining) throw new BusError('closed', 'bus is draining');
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
