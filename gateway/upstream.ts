/**
 * What the gateway asks of the workers: every request over the bus leaves through here, built and
 * read with the internal protocol (`shared/protocol/internal.ts`), so the subjects, the timeouts
 * and the gateway's own envelope header live in one place.
 */
import { subjects, BusError, type Bus } from '../shared/bus.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/log.ts';
import { envelope, envelopeHeader, frames, readHistoryAnswer, readOpenAnswer, readTicketAnswer, type OpenAnswer } from '../shared/protocol/internal.ts';
import type { User } from '../shared/protocol/schemas.ts';
import type { HistoryFrames } from './room-stream.ts';
import { Hedger } from './hedge.ts';

/**
 * How long a liveness report may take. Its own timeout, not REQUEST_TIMEOUT_MS: the reports are
 * every 2 s and workers declare a gateway dead after 6 s of silence.
 */
const ALIVE_TIMEOUT_MS = 2_000;

export class Upstream {
  /** The envelope header of the gateway's own requests (gap fills, tickets, liveness). */
  private readonly systemHeader: string;
  /** Requests safe to repeat go through it: re-sent to another worker when the first is slow or lost. */
  readonly hedger: Hedger;

  constructor(
    private readonly bus: Bus,
    private readonly cfg: Config,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.systemHeader = envelopeHeader(`$gw:${nodeId}`, nodeId, { id: '$gateway', name: nodeId });
    this.hedger = new Hedger(bus, subjects.requests, cfg.hedgeMs, cfg.requestTimeoutMs);
  }

  /** A frame (a client's text as received, or a builder's) behind a connection's envelope header. */
  request(header: string, frame: string, timeoutMs = this.cfg.requestTimeoutMs): Promise<Uint8Array> {
    return this.bus.request(subjects.requests, envelope(header, frame), timeoutMs);
  }

  /**
   * A request that is safe to send twice (a publish with a `cid`, join, history, presence, typing;
   * hedge.ts says why each is): sent again to another worker when the first is slow or lost.
   */
  hedged(header: string, frame: string): Promise<Uint8Array> {
    return this.hedger.request(envelope(header, frame));
  }

  close(): void {
    this.hedger.close();
  }

  /** Opens or resumes a connection's session: undefined when the worker answered with an error. */
  async open(header: string, session: string | undefined): Promise<OpenAnswer | undefined> {
    return readOpenAnswer(await this.request(header, frames.open(session)));
  }

  /** Tells the workers this gateway is alive (logged, not thrown, when it cannot). */
  alive(): void {
    this.bus.request(subjects.alive, envelope(this.systemHeader, frames.alive()), ALIVE_TIMEOUT_MS).catch((err: unknown) => {
      this.log.warn({ err: unavailableMessage(err) }, 'could not report liveness');
    });
  }

  /** History for a stream's gap, asked of a worker as the gateway itself: the stored frames, as stored. */
  async fetchAfter(room: string, after: number, limit: number): Promise<HistoryFrames | undefined> {
    try {
      return readHistoryAnswer(await this.hedged(this.systemHeader, frames.history(room, after, limit)));
    } catch (err) {
      this.log.warn({ room, err: unavailableMessage(err) }, 'gap fill failed; will retry');
      return undefined;
    }
  }

  /** Takes a ticket (once, atomically, in the store): its data, or undefined when unknown, used or expired. */
  async takeTicket(ticket: string): Promise<string | undefined> {
    return readTicketAnswer(await this.request(this.systemHeader, frames.ticketTake(ticket)));
  }

  async putTicket(ticket: string, data: string, ttlMs: number): Promise<void> {
    await this.request(this.systemHeader, frames.ticketPut(ticket, data, ttlMs));
  }

  /** A request of the server API, as `user`. */
  api(user: User, frame: string, timeoutMs: number): Promise<Uint8Array> {
    return this.request(envelopeHeader(`$api:${this.nodeId}`, this.nodeId, user), frame, timeoutMs);
  }
}

/** What a client is told when a worker could not be asked or did not answer. */
export function unavailableMessage(err: unknown): string {
  if (err instanceof BusError) {
    if (err.kind === 'timeout') return 'no worker answered in time; retry';
    if (err.kind === 'no_responders') return 'no worker is running; retry later';
    if (err.kind === 'disconnected' || err.kind === 'closed') return 'message bus unavailable; retry later';
    return 'the request failed in a worker; retry';
  }
  return 'backend unavailable; retry';
}
