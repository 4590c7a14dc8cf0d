/**
 * The message bus between gateways and workers. Implementations: NATS (`bus-nats.ts`) and
 * in-process (`bus-memory.ts`); both pass `test/contract/bus.test.ts`.
 *
 * What callers may rely on:
 * - `publish` is fire-and-forget, at most once. Messages one publisher sends on one subject reach
 *   each subscriber in the order they were published. Nothing is ordered across publishers.
 * - `request` goes to exactly one handler of the subject's queue group and settles exactly once:
 *   with the handler's answer, or with a `BusError` (`timeout` after `timeoutMs`, `no_responders`
 *   at once when no handler is subscribed, `disconnected` when the bus is down). It never hangs.
 * - A handler that throws answers the request with a `BusError` of kind `handler`; the bus stays up.
 * - `subscribe` is active for messages published after it returns (NATS: after the server has
 *   the subscription, which `flush()` waits for; the other servers of a NATS cluster learn of it
 *   over their routes a moment later, and a request sent through one of them meanwhile can get
 *   `no_responders` — which the gateway's hedge retries). A subject ending in `.>` matches every subject
 *   with that prefix and one or more further tokens (NATS semantics); others match exactly.
 * - Payloads are bytes and are not copied: a receiver must not mutate them.
 * - After a reconnect (to the same server or, in a cluster, to another one) subscriptions and
 *   queue memberships are active again by themselves, but what was published while this
 *   connection was away was not delivered to it: `onReconnect` listeners are told, so that they
 *   can catch up from where the messages are stored (room history).
 */
export interface Bus {
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string) => void): BusSubscription;
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Serves requests on `subject` in queue group `queue`: each request goes to one member. */
  serve(subject: string, queue: string, handler: RequestHandler): BusSubscription;
  /** Resolves when everything published or subscribed so far has reached the server. */
  flush(): Promise<void>;
  /** Calls `listener` each time the connection is back after a drop (memory: never). */
  onReconnect(listener: () => void): void;
  /** True while connected (memory: always, until closed). */
  readonly connected: boolean;
  /** Stops taking new messages, lets handlers in flight finish and answer, then closes. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export type RequestHandler = (data: Uint8Array) => Promise<Uint8Array> | Uint8Array;

export interface BusSubscription {
  unsubscribe(): void;
}

export type BusErrorKind = 'timeout' | 'no_responders' | 'disconnected' | 'handler' | 'closed';

export class BusError extends Error {
  override readonly name = 'BusError';
  constructor(
    readonly kind: BusErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Subject names. Room names and user ids may contain characters with a meaning in NATS subjects
 * (`.`, `*`, `>`, spaces), so they are escaped into one token: `a.b` → `a%2Eb`.
 */
export function subjectToken(s: string): string {
  if (!LONE_SURROGATE.test(s)) return escapeToken(s);
  // encodeURIComponent throws on a lone surrogate. Ids are checked to be well-formed where they
  // enter, but this stays total: a lone surrogate becomes `%uD800`, which the %XX escapes of
  // well-formed text never produce, so distinct ids keep distinct subjects.
  let out = '';
  let from = 0;
  for (const m of s.matchAll(LONE_SURROGATES)) {
    out += escapeToken(s.slice(from, m.index)) + `%u${m[0].charCodeAt(0).toString(16).toUpperCase()}`;
    from = m.index + 1;
  }
  return out + escapeToken(s.slice(from));
}

const LONE_SURROGATE = /\p{Surrogate}/u;
const LONE_SURROGATES = /\p{Surrogate}/gu;

function escapeToken(s: string): string {
  return encodeURIComponent(s).replace(/[.*!'()~>]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export const subjects = {
  /** Requests from gateways; workers serve it in queue group `workers`. */
  requests: 'rt.req',
  workersQueue: 'workers',
  /**
   * Gateways' liveness reports (`$alive`), served by the workers' queue group apart from
   * `requests`, with their own timeout: a backlog of client requests cannot make a gateway look
   * dead, nor a liveness report wait behind it.
   */
  alive: 'rt.alive',
  /** Events of one room: messages (sequenced), presence, typing. */
  room: (room: string) => `rt.room.${subjectToken(room)}`,
  /** Events for every connection of one user: direct messages, notifications. */
  user: (userId: string) => `rt.user.${subjectToken(userId)}`,
  /**
   * All user events. Each gateway takes them all through this one subscription and keeps those of
   * users it holds a connection of: a subscription per connected user would cost more memory and
   * a SUB/UNSUB per connect than the extra traffic, since direct messages and notifications are
   * few next to room traffic (which stays interest-based, per room).
   */
  allUsers: 'rt.user.>',
  userPrefix: 'rt.user.',
} as const;
