/**
 * The delivery canary: proves, continuously, that room events still reach this gateway.
 *
 * Why: a gateway can be connected to the bus, answer requests, and still receive nothing on its
 * room subscriptions: an interest lost in a broker failover, a server that stopped forwarding.
 * `/readyz` stayed green while no message was delivered. So every `intervalMs` the gateway
 * publishes a probe to the room subject of a room only it follows (`$canary.<node>`), subscribed
 * exactly as rooms with local members are, and published the way workers publish room events
 * (a room event with seq 0). When no probe has come back for `staleMs`, `stale` says why and the
 * gateway reports not ready until probes flow again.
 */
import { subjects, type Bus, type BusSubscription } from '../shared/bus.ts';
import { encodeRoomEvent } from '../shared/envelope.ts';
import type { Logger } from '../shared/log.ts';

export class Canary {
  readonly subject: string;
  /** When the last probe came back (performance.now() ms); the start counts as one. */
  #lastRoundTrip = performance.now();
  #sub: BusSubscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wasStale = false;
  /** Probe number; a probe is recognised by its number, so an old one is still a round trip of the path. */
  #seq = 0;
  readonly #payloadPrefix: string;

  constructor(
    private readonly bus: Bus,
    nodeId: string,
    private readonly intervalMs: number,
    private readonly staleMs: number,
    private readonly log: Logger,
  ) {
    this.subject = subjects.room(`$canary.${nodeId}`);
    this.#payloadPrefix = `{"type":"$canary","node":${JSON.stringify(nodeId)},"n":`;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    this.#sub = this.bus.subscribe(this.subject, () => {
      this.#lastRoundTrip = performance.now();
    });
    this.#timer = setInterval(() => this.#probe(), this.intervalMs);
    this.#timer.unref();
    this.#probe();
  }

  /** Seconds since the last probe came back (since the start before the first one). */
  get ageSeconds(): number {
    return (performance.now() - this.#lastRoundTrip) / 1000;
  }

  /** Why the gateway is not ready, when probes stopped coming back; undefined while they flow. */
  get stale(): string | undefined {
    if (this.intervalMs <= 0) return undefined;
    const age = this.ageSeconds;
    return age * 1000 > this.staleMs ? `no round trip for ${Math.floor(age)} s` : undefined;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }

  #probe(): void {
    const stale = this.stale;
    if (stale !== undefined && !this.#wasStale) this.log.error({ subject: this.subject, bus: this.bus.connected }, `delivery canary: ${stale}; reporting not ready`);
    else if (stale === undefined && this.#wasStale) this.log.info({ subject: this.subject }, 'delivery canary: round trips again; ready');
    this.#wasStale = stale !== undefined;
    try {
      this.bus.publish(this.subject, encodeRoomEvent(0, '-', `${this.#payloadPrefix}${++this.#seq}}`));
    } catch (err) {
      // Not connected right now: no probe this time, and the age keeps growing.
      this.log.debug({ err }, 'canary probe not sent');
    }
  }
}
