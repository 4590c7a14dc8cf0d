/**
 * Who may connect, for a WebSocket upgrade and an SSE stream alike: the gateway's own state
 * (draining, full), `Origin`, the per-address connect rate, and credentials — a one-time ticket,
 * else a JWT (query, header, cookie), else an anonymous username when allowed. Tickets are
 * issued here too (`POST /api/tickets`), bound to the client address they were issued to.
 *
 * uWS lifetimes: everything needed from an `HttpRequest` is copied by `request()` before any
 * await; a response that awaits registers `onAborted` first and is written inside a cork.
 */
import type * as UWS from 'uWebSockets.js';
import type { Config } from '../shared/config.ts';
import { randomId } from '../shared/ids.ts';
import { ERROR_CODES } from '../shared/protocol/codes.ts';
import { SUBPROTOCOL, isUserId } from '../shared/protocol/constants.ts';
import { AuthError, Authenticator, NO_PATTERNS, tokenFrom, type Identity } from './auth.ts';
import type { Boundary } from './boundary.ts';
import type { UpgradeData } from './conn.ts';
import { Exchange, statusLine } from './http.ts';
import { AddressLimiter, TrustedProxies } from './limits.ts';
import type { GatewayStats } from './stats.ts';
import { unavailableMessage, type Upstream } from './upstream.ts';
import { bearer } from './values.ts';

const decoder = new TextDecoder();
/** Anonymous usernames: user ids (well-formed, no control characters) of at most 64 characters. */
const MAX_USERNAME = 64;
const MAX_TICKET = 128;

/** What a ticket remembers between `POST /api/tickets` and the upgrade that uses it. */
interface TicketData {
  identity: Identity;
  address: string;
}

/** What admission reads off a request, copied so that it outlives the uWS callback. */
export interface Asking {
  query: URLSearchParams;
  authorization: string;
  cookie: string;
  origin: string;
  /** The client's address (X-Forwarded-For only from TRUSTED_PROXIES). */
  address: string;
}

export interface Refusal {
  code: 'unavailable' | 'forbidden' | 'rate_limited';
  message: string;
  /** The `result` of rt_gateway_connects_total. */
  result: string;
}

export class Admission {
  /** Set when the gateway starts draining: nothing is admitted from then on. */
  draining = false;
  readonly auth: Authenticator;
  private readonly proxies: TrustedProxies;
  private readonly addressLimiter: AddressLimiter | undefined;
  private readonly allowedOrigins: Set<string> | undefined;

  constructor(
    private readonly cfg: Config,
    private readonly upstream: Upstream,
    private readonly stats: GatewayStats,
    private readonly boundary: Boundary,
  ) {
    this.auth = Authenticator.fromConfig(cfg);
    this.proxies = new TrustedProxies(cfg.trustedProxies);
    this.addressLimiter = cfg.connectRatePerIp > 0 ? new AddressLimiter(cfg.connectRatePerIp) : undefined;
    this.allowedOrigins = cfg.allowedOrigins?.length ? new Set(cfg.allowedOrigins.map((o) => o.toLowerCase())) : undefined;
  }

  /** The client's address: the one place it is read. Call inside the uWS callback. */
  clientAddress(res: UWS.HttpResponse, req: UWS.HttpRequest): string {
    return this.proxies.clientAddress(decoder.decode(res.getRemoteAddressAsText()), req.getHeader('x-forwarded-for'), req.getHeader('x-real-ip'));
  }

  /** Copies what admission needs from the request. Call inside the uWS callback. */
  asking(res: UWS.HttpResponse, req: UWS.HttpRequest): Asking {
    return {
      query: new URLSearchParams(req.getQuery() ?? ''),
      authorization: req.getHeader('authorization'),
      cookie: req.getHeader('cookie'),
      origin: req.getHeader('origin'),
      address: this.clientAddress(res, req),
    };
  }

  /** Why a new socket or stream is not admitted now (`open`: those this gateway holds), or undefined. */
  refusal(a: Asking, open: number): Refusal | undefined {
    if (this.draining) return { code: 'unavailable', message: 'gateway is shutting down', result: 'draining' };
    if (this.cfg.maxConnections > 0 && open >= this.cfg.maxConnections) {
      return { code: 'unavailable', message: 'gateway at capacity; retry with backoff', result: 'capacity' };
    }
    if (a.origin && this.allowedOrigins && !this.allowedOrigins.has(a.origin.toLowerCase())) {
      return { code: 'forbidden', message: 'origin not allowed', result: 'forbidden' };
    }
    if (this.addressLimiter && !this.addressLimiter.allow(a.address)) {
      return { code: 'rate_limited', message: 'too many connection attempts from this address', result: 'rate_limited' };
    }
    return undefined;
  }

  /** CORS headers for a cross-origin stream, when origins are restricted (and so this one was allowed). */
  corsHeaders(origin: string, headers: Record<string, string>): void {
    if (!origin || !this.allowedOrigins) return;
    headers['access-control-allow-origin'] = origin;
    headers['access-control-allow-credentials'] = 'true';
    headers.vary = 'Origin';
  }

  /**
   * Who is asking: a ticket, else a JWT (query, header, cookie), else an anonymous username when
   * allowed. Synchronous where no check is needed, so an anonymous connection costs no promise;
   * an AuthError (returned or rejected) says why not.
   */
  credentials(query: URLSearchParams, authorization: string, cookie: string, address: string): Identity | AuthError | Promise<Identity> {
    const ticket = query.get('ticket');
    if (ticket) return this.redeemTicket(ticket, address);
    const token = tokenFrom(query, authorization, cookie, this.cfg.jwtCookie);
    if (token instanceof AuthError) return token;
    if (token) return this.auth.check(token);
    const username = query.get('username');
    if (username === null) return new AuthError('missing', 'missing credentials');
    if (!this.cfg.allowAnonymous) return new AuthError('anonymous_disabled', 'anonymous access is disabled');
    const name = username.trim();
    return name.length <= MAX_USERNAME && isUserId(name) ? { user: { id: name, name }, rooms: NO_PATTERNS } : new AuthError('invalid_username', 'invalid username');
  }

  /** `credentials` as a promise that rejects with an AuthError, counted in rt_gateway_auth_failures_total. */
  async identify(a: Asking): Promise<Identity> {
    try {
      const who = this.credentials(a.query, a.authorization, a.cookie, a.address);
      if (who instanceof AuthError) throw who;
      return await who;
    } catch (err) {
      const refused = asAuthError(err);
      this.stats.authFailures.add(refused.kind);
      throw refused;
    }
  }

  /** Takes a ticket (once, atomically, in the store) and checks it is used from its address. */
  private async redeemTicket(ticket: string, address: string): Promise<Identity> {
    if (ticket.length > MAX_TICKET) throw new AuthError('ticket', 'invalid ticket');
    let data: string | undefined;
    try {
      data = await this.upstream.takeTicket(ticket);
    } catch {
      throw new AuthError('unavailable', 'credentials could not be checked; retry');
    }
    if (!data) throw new AuthError('ticket', 'ticket unknown, used or expired');
    const { identity, address: boundTo } = JSON.parse(data) as TicketData;
    if (boundTo !== address) throw new AuthError('ticket', 'ticket was issued to another address');
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) throw new AuthError('expired', 'token expired');
    return identity;
  }

  /** `POST /api/tickets` with `Authorization: Bearer <JWT>`: a one-time ticket for a browser upgrade. */
  createTicket(res: UWS.HttpResponse, req: UWS.HttpRequest): void {
    const ex = new Exchange(res);
    const token = bearer(req.getHeader('authorization'));
    const address = this.clientAddress(res, req);
    if (!token) return ex.error('unauthorized', 'Authorization: Bearer <JWT> is required');
    void (async () => {
      let identity: Identity;
      try {
        identity = await this.auth.verify(token);
      } catch (err) {
        return ex.error('unauthorized', asAuthError(err).reason);
      }
      const ticket = randomId(24);
      try {
        await this.upstream.putTicket(ticket, JSON.stringify({ identity, address } satisfies TicketData), this.cfg.ticketTtlMs);
      } catch (err) {
        return ex.error('unavailable', unavailableMessage(err));
      }
      ex.json(201, { ticket, expiresIn: Math.floor(this.cfg.ticketTtlMs / 1000) });
    })().catch((err: unknown) => {
      this.boundary.failed('POST /api/tickets', err);
      ex.fail(err);
    });
  }

  /**
   * The WebSocket upgrade (`open`: sockets this gateway holds), always answered at once, in this
   * callback. Credentials problems are reported after the upgrade, as close 4001 with a reason, so
   * a browser (which sees no HTTP status of a failed upgrade) can tell them from network failures;
   * credentials that take a check (a JWT, a ticket) are checked while the socket opens.
   */
  upgrade(res: UWS.HttpResponse, req: UWS.HttpRequest, context: UWS.us_socket_context_t, open: number): void {
    const key = req.getHeader('sec-websocket-key');
    const protocols = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const a = this.asking(res, req);
    const refused = this.refusal(a, open);
    if (refused) return this.refuseUpgrade(res, refused.code, refused.message, refused.result);
    let selected = '';
    if (protocols) {
      const offered = protocols.split(',').map((p) => p.trim());
      if (!offered.includes(SUBPROTOCOL)) return this.refuseUpgrade(res, 'bad_request', `unsupported subprotocol; this server speaks ${SUBPROTOCOL}`, 'bad_request');
      selected = SUBPROTOCOL;
    }
    const data: UpgradeData = {};
    const session = a.query.get('session');
    if (session && session.length <= 64) data.session = session;

    const who = this.credentials(a.query, a.authorization, a.cookie, a.address);
    if (who instanceof AuthError) {
      data.authError = who.reason;
      data.authFailure = who.kind;
    } else if (who instanceof Promise) {
      // Checked after the upgrade: `open` waits for this. Upgrading from an async continuation
      // (res.cork(() => res.upgrade(...)) after an await) hits a uWS bug in the version we run:
      // cork() may read the new WebSocket's memory as the response's state and close the socket
      // right after `open`, without a close frame (uNetworking/uWebSockets#1928). (uWS copies
      // `data` at the upgrade: the outcome is applied to the socket's own copy, in `open`.)
      data.credentials = who.then((identity) => identity, asAuthError);
    } else data.identity = who;
    res.upgrade(data, key, selected, extensions, context);
  }

  /** An upgrade answered with an HTTP error instead, counted in rt_gateway_connects_total as `result`. */
  private refuseUpgrade(res: UWS.HttpResponse, code: keyof typeof ERROR_CODES, message: string, result: string): void {
    this.stats.connects.add(result);
    res.cork(() => res.writeStatus(statusLine(ERROR_CODES[code].status)).writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code, message } })));
  }

  close(): void {
    this.addressLimiter?.close();
  }
}

/** Any failure to check credentials as an AuthError (an unexpected one: `unavailable`, retry). */
export function asAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  return new AuthError('unavailable', 'credentials could not be checked; retry');
}
