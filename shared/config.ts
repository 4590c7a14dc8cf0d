/**
 * The one typed configuration schema. Each variable is declared once, here: its type, default and
 * description; `Config` is derived from it, and the README's table is generated from it
 * (`npm run docs:config`; test/unit/startup.test.ts checks that they match). A bad value stops the process at start with a message naming the
 * variable (exit code 2).
 */

import { ROOM_PATTERN } from './protocol/schemas.ts';

type Kind = 'string' | 'int' | 'bool' | 'url' | 'enum' | 'list';

interface VarSpec {
  key: string;
  kind: Kind;
  description: string;
  /** Default value as it would be written in the environment; undefined means unset. */
  default?: string;
  values?: readonly string[];
  min?: number;
  max?: number;
}

const v = <const S extends VarSpec>(s: S) => s;

export const CONFIG_SPEC = {
  PORT: v({ key: 'port', kind: 'int', min: 0, max: 65535, default: '8080', description: 'HTTP/WebSocket port of the gateway (embedded mode: the one process; `npm run cluster`: nginx). 0 picks a free port.' }),
  HOST: v({ key: 'host', kind: 'string', default: '0.0.0.0', description: 'Address the gateway listens on.' }),
  NATS_URL: v({ key: 'natsUrl', kind: 'url', description: 'NATS server(s), comma-separated: the servers of a NATS cluster (`nats://n1:4222,nats://n2:4222,nats://n3:4222`); when the server in use dies, the process reconnects to another. Unset in the embedded mode; required by `gateway` and `worker`.' }),
  REDIS_URL: v({ key: 'redisUrl', kind: 'url', description: 'Redis server (`redis://host:6379/0`). Unset in the embedded mode; required by `worker`.' }),
  REDIS_CLUSTER_NODES: v({ key: 'redisClusterNodes', kind: 'list', description: 'Redis Cluster nodes, comma-separated (`host:port,host:port`), instead of `REDIS_URL`: every store operation runs on the cluster (a few nodes are enough; the client learns the rest).' }),
  REDIS_WAIT_REPLICAS: v({ key: 'redisWaitReplicas', kind: 'int', min: 0, default: '0', description: 'Replicas that must have a publish, a notification or a session change before it is acknowledged (Redis `WAIT`); fewer within `REDIS_WAIT_TIMEOUT_MS` answers `unavailable`. 0: acknowledged once the primary has it, so a failover can lose the last acknowledged writes.' }),
  REDIS_WAIT_TIMEOUT_MS: v({ key: 'redisWaitTimeoutMs', kind: 'int', min: 1, default: '1000', description: 'How long a write waits for `REDIS_WAIT_REPLICAS` replicas before it answers `unavailable`.' }),
  ALLOW_ANONYMOUS: v({ key: 'allowAnonymous', kind: 'bool', description: 'Accept `?username=` without credentials. Default: true in the embedded mode and in `npm run cluster`, false for `npm run gateway`.' }),
  LOG_LEVEL: v({ key: 'logLevel', kind: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], description: 'Log level (JSON logs on stdout).' }),
  NODE_ID: v({ key: 'nodeId', kind: 'string', description: 'Id of this gateway, sent to clients as `welcome.node`. Default: host name and a random suffix.' }),
  REQUEST_TIMEOUT_MS: v({ key: 'requestTimeoutMs', kind: 'int', min: 1, default: '5000', description: 'How long a gateway waits for a worker before answering `unavailable`.' }),
  HEDGE_MS: v({ key: 'hedgeMs', kind: 'int', min: 0, default: '750', description: 'A request that is safe to repeat (publish with `cid`, join, history, presence, typing) and has no answer after this long is sent again to another worker; the first answer wins. Also sent again at once when NATS reports no responders. 0: never.' }),
  CANARY_MS: v({ key: 'canaryMs', kind: 'int', min: 0, default: '1000', description: 'Interval of the delivery canary: a probe each gateway publishes to its own canary room and expects back through its room subscriptions. 0: off.' }),
  CANARY_STALE_MS: v({ key: 'canaryStaleMs', kind: 'int', min: 1, default: '5000', description: 'When no canary probe came back for this long, `/readyz` answers 503 with `{"canary":"no round trip for N s"}`.' }),
  HEARTBEAT_MS: v({ key: 'heartbeatMs', kind: 'int', min: 1000, default: '25000', description: 'Interval at which clients should ping (`welcome.heartbeat`); a connection silent for twice as long is closed.' }),
  HISTORY_MAX: v({ key: 'historyMax', kind: 'int', min: 1, default: '1000', description: 'Messages kept per room.' }),
  HISTORY_TTL_MS: v({ key: 'historyTtlMs', kind: 'int', min: 1000, default: '86400000', description: "How long a room's history lives after its last message." }),
  REPLAY_MAX: v({ key: 'replayMax', kind: 'int', min: 1, default: '500', description: 'Most messages a `join` with `since` replays; more missing means `recovered: false`.' }),
  SESSION_GRACE_MS: v({ key: 'sessionGraceMs', kind: 'int', min: 0, default: '30000', description: 'How long a session outlives its connection: reconnecting with `?session=` within it restores the rooms without presence leave/join.' }),
  JWT_SECRET: v({ key: 'jwtSecret', kind: 'string', description: 'HS256 secret for client JWTs (at least 32 characters).' }),
  JWT_PUBLIC_KEY_FILE: v({ key: 'jwtPublicKeyFile', kind: 'string', description: 'PEM file with the RS256 or ES256 public key (SPKI) for client JWTs.' }),
  JWT_JWKS_FILE: v({ key: 'jwtJwksFile', kind: 'string', description: 'JSON Web Key Set file with the RS256/ES256 public keys for client JWTs (chosen by `kid`).' }),
  JWT_ISSUER: v({ key: 'jwtIssuer', kind: 'string', description: 'When set, a JWT must have this `iss`.' }),
  JWT_AUDIENCE: v({ key: 'jwtAudience', kind: 'string', description: 'When set, a JWT must have this `aud`.' }),
  JWT_COOKIE: v({ key: 'jwtCookie', kind: 'string', default: 'rt_token', description: 'Name of the cookie that may carry the JWT.' }),
  JWT_CLOCK_SKEW_S: v({ key: 'jwtClockSkewS', kind: 'int', min: 0, default: '30', description: 'Clock skew allowed when checking `exp` and `nbf`, in seconds.' }),
  API_KEY: v({ key: 'apiKey', kind: 'string', description: 'Key of the server API (`Authorization: Bearer <API_KEY>`); unset turns the server API off (403).' }),
  ALLOWED_ORIGINS: v({ key: 'allowedOrigins', kind: 'list', description: 'Comma-separated origins allowed to open a WebSocket (`https://app.example.com`); an upgrade with another `Origin` gets HTTP 403. Unset: any origin. Requests without `Origin` are always allowed.' }),
  TRUSTED_PROXIES: v({ key: 'trustedProxies', kind: 'list', description: 'Comma-separated addresses of proxies whose `X-Forwarded-For`/`X-Real-IP` give the client address (tickets, per-address limits). Unset: none.' }),
  TICKET_TTL_MS: v({ key: 'ticketTtlMs', kind: 'int', min: 1000, default: '30000', description: 'How long a ticket from `POST /api/tickets` can be used.' }),
  RATE_LIMIT_RPS: v({ key: 'rateLimitRps', kind: 'int', min: 0, default: '20', description: 'Requests per second a connection may send (token bucket); past it `rate_limited`, and 10 s of hammering closes it with 1008. 0: no limit.' }),
  RATE_LIMIT_BURST: v({ key: 'rateLimitBurst', kind: 'int', min: 0, default: '40', description: 'Burst of the per-connection rate limit.' }),
  CONNECT_RATE_PER_IP: v({ key: 'connectRatePerIp', kind: 'int', min: 0, default: '20', description: 'WebSocket upgrades per second per client address (burst: twice as many); past it HTTP 429. 0: no limit.' }),
  MAX_CONNECTIONS: v({ key: 'maxConnections', kind: 'int', min: 0, default: '100000', description: 'Connections per gateway; past it upgrades get HTTP 503. 0: no limit.' }),
  MAX_CONNECTIONS_PER_USER: v({ key: 'maxConnectionsPerUser', kind: 'int', min: 0, default: '20', description: 'Connections of one user per gateway; past it the new connection is closed with 1008. 0: no limit.' }),
  MAX_ROOMS_PER_CONNECTION: v({ key: 'maxRoomsPerConnection', kind: 'int', min: 0, default: '100', description: 'Rooms one connection may be in; past it `join` answers `forbidden`. 0: no limit.' }),
  MAX_FRAME_BYTES: v({ key: 'maxFrameBytes', kind: 'int', min: 0, default: '65536', description: 'Largest WebSocket frame accepted; larger frames close the connection with 1009, up to MAX_FRAME_BYTES + 1 MiB (larger ones are dropped without a close frame: the client sees 1006). 0: 16 MiB, and larger frames are dropped.' }),
  MAX_CONTENT_CHARS: v({ key: 'maxContentChars', kind: 'int', min: 0, default: '4096', description: 'Longest `content` of a message (`too_large` past it). 0: no limit.' }),
  MAX_BODY_BYTES: v({ key: 'maxBodyBytes', kind: 'int', min: 1024, default: '1048576', description: 'Largest HTTP API request body; larger gets 413.' }),
  MAX_BACKPRESSURE_BYTES: v({ key: 'maxBackpressureBytes', kind: 'int', min: 1024, default: '1048576', description: 'Bytes a WebSocket client may fall behind; past it the connection is closed with 1013 (it reconnects and recovers from history), so one slow client never slows a room.' }),
  SSE_HEARTBEAT_MS: v({ key: 'sseHeartbeatMs', kind: 'int', min: 100, default: '10000', description: 'Interval of the comment lines that keep `/sse` streams alive through proxies.' }),
  SSE_MAX_BUFFER_BYTES: v({ key: 'sseMaxBufferBytes', kind: 'int', min: 1024, default: '1048576', description: 'Bytes an `/sse` reader may fall behind before its stream is cut (it reconnects and resumes from history).' }),
  DASHBOARD_ROOM: v({ key: 'dashboardRoom', kind: 'string', default: 'rt.dashboard', description: 'Room where every gateway publishes its `stats` once a second, shown live at `/dashboard`. A `private:` name restricts it to JWTs listing it; `off` turns it off.' }),
  DRAIN_MS: v({ key: 'drainMs', kind: 'int', min: 0, default: '5000', description: 'On SIGTERM the gateway reports not ready at once, refuses new connections, and closes its sockets with 1001 spread over this window, so clients do not reconnect all at once.' }),
  METRICS_PORT: v({ key: 'metricsPort', kind: 'int', min: 0, max: 65535, description: 'Worker only: port for `/metrics`, `/healthz` and `/readyz`. Unset: no HTTP listener.' }),
} as const;

type Spec = typeof CONFIG_SPEC;
export type ConfigName = keyof Spec;
type ValueOf<S> = S extends { kind: 'int' } ? number : S extends { kind: 'bool' } ? boolean : S extends { kind: 'list' } ? string[] : string;
type Field<N extends ConfigName> = Spec[N] extends { default: string } ? { [K in Spec[N]['key']]: ValueOf<Spec[N]> } : { [K in Spec[N]['key']]?: ValueOf<Spec[N]> };
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
export type Config = Omit<UnionToIntersection<{ [N in ConfigName]: Field<N> }[ConfigName]>, 'allowAnonymous'> & { allowAnonymous: boolean };

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type Role = 'embedded' | 'gateway' | 'worker';

function parseOne(name: ConfigName, raw: string): string | number | boolean | string[] {
  const spec: VarSpec = CONFIG_SPEC[name];
  const bad = (why: string) => new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: ${why}`);
  const value = raw.trim();
  switch (spec.kind) {
    case 'int': {
      const range = `a whole number${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}${spec.max !== undefined ? ` and ≤ ${spec.max}` : ''}`;
      if (!/^\d+$/.test(value)) throw bad(`expected ${range}`);
      const n = Number(value);
      if (!Number.isSafeInteger(n) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) throw bad(`expected ${range}`);
      return n;
    }
    case 'bool': {
      const b = value.toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(b)) return true;
      if (['0', 'false', 'no', 'off'].includes(b)) return false;
      throw bad('expected true or false');
    }
    case 'enum': {
      const e = value.toLowerCase();
      if (!spec.values?.includes(e)) throw bad(`expected one of ${spec.values?.join(', ')}`);
      return e;
    }
    case 'url': {
      for (const part of value.split(',')) {
        try {
          new URL(part.trim());
        } catch {
          throw bad('expected a URL such as nats://127.0.0.1:4222 or redis://127.0.0.1:6379');
        }
      }
      return value;
    }
    case 'list':
      return value.split(',').map((s) => s.trim()).filter(Boolean);
    default:
      if (value === '') throw bad('must not be empty');
      return value;
  }
}

/**
 * Reads the configuration for one role from `env`. Throws `ConfigError` naming the variable for a
 * bad value or a missing required one.
 */
export function loadConfig(role: Role, env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(CONFIG_SPEC) as [ConfigName, VarSpec][]) {
    const raw = env[name];
    const given = raw !== undefined && raw !== '' ? raw : spec.default;
    if (given !== undefined) out[spec.key] = parseOne(name, given);
  }
  out.allowAnonymous ??= role === 'embedded';
  const cfg = out as Config;
  if (role !== 'embedded' && !cfg.natsUrl) throw new ConfigError(`NATS_URL is required for the ${role} (e.g. NATS_URL=nats://127.0.0.1:4222)`);
  if (cfg.redisUrl && cfg.redisClusterNodes) throw new ConfigError('REDIS_URL and REDIS_CLUSTER_NODES are exclusive: set one');
  if (role === 'worker' && !cfg.redisUrl && !cfg.redisClusterNodes) {
    throw new ConfigError('REDIS_URL is required for the worker (e.g. REDIS_URL=redis://127.0.0.1:6379), or REDIS_CLUSTER_NODES for a Redis Cluster');
  }
  for (const node of cfg.redisClusterNodes ?? []) {
    if (!/^[^\s:]+:\d{1,5}$/.test(node)) throw new ConfigError(`REDIS_CLUSTER_NODES is invalid: ${JSON.stringify(node)} is not host:port`);
  }
  if (cfg.jwtSecret !== undefined && cfg.jwtSecret.length < 32) throw new ConfigError('JWT_SECRET is invalid: use at least 32 characters');
  if (cfg.dashboardRoom !== 'off' && !new RegExp(ROOM_PATTERN).test(cfg.dashboardRoom)) {
    throw new ConfigError(`DASHBOARD_ROOM=${JSON.stringify(cfg.dashboardRoom)} is invalid: expected a room name ([A-Za-z0-9_.:-]{1,128}) or off`);
  }
  const keySources = [cfg.jwtSecret, cfg.jwtPublicKeyFile, cfg.jwtJwksFile].filter((x) => x !== undefined).length;
  if (keySources > 1) throw new ConfigError('JWT_SECRET, JWT_PUBLIC_KEY_FILE and JWT_JWKS_FILE are exclusive: set one');
  return cfg;
}

/** The README configuration table, made from the schema. */
export function configTable(): string {
  const rows = Object.entries(CONFIG_SPEC).map(([name, spec]: [string, VarSpec]) => {
    const def = spec.default === undefined ? '—' : `\`${spec.default}\``;
    return `| \`${name}\` | ${def} | ${spec.description.replace(/\|/g, '\\|')} |`;
  });
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
