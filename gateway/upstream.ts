/**
 * What the gateway asks of the workers: every request over the bus leaves through here, so the
 * request subject, the timeout and the gateway's own envelope header live in one place.
 */
import { subjects, BusError, type Bus } from '../shared/bus.ts';
import type { Config } from '../shared/config.ts';
import { envelopeHeader } from '../shared/envelope.ts';
import type { Logger } from '../shared/log.ts';
import type { MessageEvent } from '../shared/protocol/schemas.ts';
import type { HistoryFrames } from './room-stream.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const j = JSON.stringify;

export class Upstream {
  /** The envelope header of the gateway's own requests (gap fills, tickets, liveness). */
  readonly systemHeader: string;

  constructor(
    private readonly bus: Bus,
    private readonly cfg: Config,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.systemHeader = envelopeHeader(`$gw:${nodeId}`, nodeId, { id: '$gateway', name: nodeId });
  }

  request(envelope: string): Promise<Uint8Array> {
    return this.bus.request(subjects.requests, encoder.encode(envelope), this.cfg.requestTimeoutMs);
  }

  alive(): void {
    this.request(this.systemHeader + '{"type":"$alive"}}').catch((err: unknown) => {
      this.log.warn({ err: unavailableMessage(err) }, 'could not report liveness');
    });
  }

  /** History for a stream's gap, asked of a worker as the gateway itself. */
  async fetchAfter(room: string, after: number, limit: number): Promise<HistoryFrames | undefined> {
    try {
      const answer = await this.request(this.systemHeader + j({ type: 'history', room, after, limit }) + '}');
      const reply = JSON.parse(decoder.decode(answer)) as { type: string; seq: number; epoch: string; messages: MessageEvent[] };
      if (reply.type !== 'reply') return undefined;
      return {
        seq: reply.seq,
        epoch: reply.epoch,
        frames: reply.messages.map((m) => ({ seq: m.seq, frame: encoder.encode(j(m)) })),
      };
    } catch (err) {
      this.log.warn({ room, err: unavailableMessage(err) }, 'gap fill failed; will retry');
      return undefined;
    }
  }

  /** Takes a ticket (once, atomically, in the store): its data, or undefined when unknown, used or expired. */
  async takeTicket(ticket: string): Promise<string | undefined> {
    const answer = await this.request(this.systemHeader + j({ type: '$ticket.take', ticket }) + '}');
    const taken = JSON.parse(decoder.decode(answer)) as { data?: string };
    return taken.data;
  }

  async putTicket(ticket: string, data: string, ttlMs: number): Promise<void> {
    await this.request(this.systemHeader + j({ type: '$ticket.put', ticket, data, ttlMs }) + '}');
  }

  /** A request of the server API, as `user`. */
  api(user: { id: string; name: string }, frame: Record<string, unknown>, timeoutMs: number): Promise<Uint8Array> {
    return this.bus.request(subjects.requests, encoder.encode(envelopeHeader(`$api:${this.nodeId}`, this.nodeId, user) + j(frame) + '}'), timeoutMs);
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
