/**
 * The gateway's HTTP surface and the WebSocket behaviour of `/ws`: which handler serves each
 * route, each behind the boundary (an exception answers 500, `internal` or 1011, never ends the
 * process).
 */
import type * as UWS from 'uWebSockets.js';
import type { Registry } from 'prom-client';
import type { Config } from '../shared/config.ts';
import { RtError, errorFrame } from '../shared/errors.ts';
import { metricsText } from '../shared/metrics.ts';
import { asyncApiDocument } from '../shared/protocol/asyncapi.ts';
import { requestIdOf } from '../shared/protocol/validate.ts';
import type { Admission } from './admission.ts';
import { registerServerApi } from './api.ts';
import { endInternal, type Boundary } from './boundary.ts';
import type { UpgradeData } from './conn.ts';
import type { Connections } from './connections.ts';
import { Exchange, answerInternal, type Routes } from './http.ts';
import { uwsPayloadLimit } from './limits.ts';
import type { SseStreams } from './sse.ts';
import { registerStatic } from './static.ts';
import { unavailableMessage, type Upstream } from './upstream.ts';
import { hostAuthority } from './values.ts';

const decoder = new TextDecoder();

export interface RouteDeps {
  cfg: Config;
  admission: Admission;
  conns: Connections;
  sse: SseStreams;
  upstream: Upstream;
  boundary: Boundary;
  /** Whether `/readyz` says ready, and what it reports. */
  readiness(): { ready: boolean; bus: boolean; draining: boolean; canary?: string };
  /** Registries whose metrics `/metrics` serves. */
  registries: Registry[];
}

export class GatewayRoutes {
  private readonly asyncApiCache = new Map<string, string>();

  constructor(private readonly d: RouteDeps) {}

  register(uws: UWS.TemplatedApp): void {
    const { cfg, boundary, admission, conns } = this.d;
    // Every route goes through `boundary.http()`: an exception answers 500 instead of ending the process.
    const app: Routes = {
      get: (pattern, handler) => uws.get(pattern, boundary.http(`GET ${pattern}`, handler)),
      post: (pattern, handler) => uws.post(pattern, boundary.http(`POST ${pattern}`, handler)),
      any: (pattern, handler) => uws.any(pattern, boundary.http(pattern, handler)),
    };
    app.get('/healthz', (res) => {
      res.cork(() => res.writeHeader('content-type', 'application/json').end('{"status":"ok"}'));
    });
    app.get('/readyz', (res) => {
      const { ready, bus, draining, canary } = this.d.readiness();
      const body = JSON.stringify({ status: ready ? 'ready' : 'not ready', bus, draining, ...(canary ? { canary } : {}) });
      res.cork(() => res.writeStatus(ready ? '200 OK' : '503 Service Unavailable').writeHeader('content-type', 'application/json').end(body));
    });
    uws.ws<UpgradeData>('/ws', {
      // uWS refuses a frame over its own limit as soon as it reads the announced length, and closes
      // the TCP connection without a close frame (the client sees 1006); no callback runs first, so
      // nothing can send 1009 then. Under that limit it buffers the whole frame before `message`
      // sees it. So its limit sits MAX_FRAME_BYTES + 1 MiB above ours: every frame up to there
      // gets the documented 1009, and a client can make the gateway hold at most that much.
      maxPayloadLength: cfg.maxFrameBytes ? uwsPayloadLimit(cfg.maxFrameBytes) : 16 * 1024 * 1024,
      idleTimeout: Math.min(960, Math.max(8, Math.ceil((cfg.heartbeatMs * 2) / 1000))),
      sendPingsAutomatically: true,
      // uWS would close a slow socket without a close frame (1006) or skip it silently, and a
      // close frame queued over its limit is lost too. So its limit sits well above ours, and
      // the gateway's backpressure timer closes slow sockets with 1013 while the close frame still fits.
      maxBackpressure: cfg.maxBackpressureBytes + Math.max(cfg.maxBackpressureBytes, 4 * 1024 * 1024),
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => {
        try {
          admission.upgrade(res, req, context, conns.size);
        } catch (err) {
          boundary.failed('upgrade', err);
          answerInternal(res);
        }
      },
      open: (ws) => {
        try {
          conns.open(ws);
        } catch (err) {
          boundary.failed('open', err, ws.getUserData().conn?.id);
          endInternal(ws);
        }
      },
      message: (ws, message, isBinary) => {
        try {
          conns.message(ws, message, isBinary);
        } catch (err) {
          boundary.failed('message', err, ws.getUserData().conn?.id);
          try {
            ws.send(errorFrame(requestIdOf(decoder.decode(message)), 'internal', 'internal error'), false);
          } catch {
            // The socket is gone already.
          }
        }
      },
      drain: () => {},
      close: (ws) => {
        try {
          conns.close(ws);
        } catch (err) {
          boundary.failed('close', err, ws.getUserData().conn?.id);
        }
      },
    });
    app.post('/api/tickets', (res, req) => admission.createTicket(res, req));
    app.get('/sse', (res, req) => this.d.sse.serve(res, req));
    app.get('/metrics', (res) => {
      const ex = new Exchange(res);
      const [main] = this.d.registries;
      metricsText(this.d.registries).then(
        (text) => {
          if (ex.aborted) return;
          ex.aborted = true;
          res.cork(() => res.writeHeader('content-type', main!.contentType).end(text));
        },
        (err: unknown) => ex.fail(err),
      ).catch((err: unknown) => boundary.failed('GET /metrics', err));
    });
    registerServerApi(app, {
      cfg,
      ask: (user, frame, timeoutMs = cfg.requestTimeoutMs) =>
        this.d.upstream.api(user, frame, timeoutMs).catch((err: unknown) => {
          throw new RtError('unavailable', unavailableMessage(err));
        }),
      failed: (where, err) => boundary.failed(where, err),
    });
    app.get('/asyncapi.json', (res, req) => {
      const body = this.asyncApiText(req.getHeader('host'));
      res.cork(() => res.writeHeader('content-type', 'application/json').writeHeader('access-control-allow-origin', '*').end(body));
    });
    registerStatic(app);
    app.any('/*', (res) => {
      res.cork(() =>
        res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end('{"error":{"code":"not_found","message":"no such route"}}'),
      );
    });
  }

  /** The AsyncAPI document, with this server's address as its server (cached per Host header). */
  asyncApiText(host: string): string {
    // Only a well-formed authority becomes the document's server URL; anything else gets none.
    const key = hostAuthority(host) ?? '';
    let text = this.asyncApiCache.get(key);
    if (!text) {
      text = JSON.stringify(asyncApiDocument(key ? { serverUrl: `ws://${key}` } : {}));
      if (this.asyncApiCache.size < 16) this.asyncApiCache.set(key, text);
    }
    return text;
  }
}
