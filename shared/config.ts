/**
 * The one typed configuration schema. Environment parsing, `.env.example` and the README table are
 * made from it (`npm run docs:config`). An unknown `RT_*`-style typo cannot be caught, but a bad
 * value of a known variable stops the process at start with a message naming the variable.
 */

type Kind = 'string' | 'int' | 'bool' | 'url' | 'enum';

interface VarSpec {
  kind: Kind;
  description: string;
  /** Default value as it would be written in the environment; undefined means unset. */
  default?: string;
  values?: readonly string[];
  min?: number;
}

export const CONFIG_SPEC = {
  PORT: { kind: 'int', min: 0, default: '8080', description: 'HTTP/WebSocket port of the gateway (embedded mode: the one process; `npm run cluster`: nginx). 0 picks a free port.' },
  HOST: { kind: 'string', default: '0.0.0.0', description: 'Address the gateway listens on.' },
  NATS_URL: { kind: 'url', description: 'NATS server(s), comma-separated (`nats://host:4222`). Unset in the embedded mode; required by `gateway` and `worker`.' },
  REDIS_URL: { kind: 'url', description: 'Redis server (`redis://host:6379/0`). Unset in the embedded mode; required by `worker`.' },
  ALLOW_ANONYMOUS: { kind: 'bool', description: 'Accept `?username=` without credentials. Default: true in the embedded mode and in `npm run cluster`, false for `npm run gateway`.' },
  LOG_LEVEL: { kind: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], description: 'Log level (JSON logs on stdout).' },
  NODE_ID: { kind: 'string', description: 'Id of this gateway, sent to clients as `welcome.node`. Default: host name, process id and a random suffix.' },
  REQUEST_TIMEOUT_MS: { kind: 'int', min: 1, default: '5000', description: 'How long a gateway waits for a worker before answering `unavailable`.' },
  MAX_FRAME_BYTES: { kind: 'int', min: 0, default: '65536', description: 'Largest WebSocket frame accepted; larger frames close the connection with 1009.' },
  MAX_CONTENT_CHARS: { kind: 'int', min: 0, default: '4096', description: 'Longest `content` of a message (`too_large` past it). 0 turns the limit off.' },
  HEARTBEAT_MS: { kind: 'int', min: 1000, default: '25000', description: 'Interval at which clients should ping (`welcome.heartbeat`); a connection silent for twice as long is closed.' },
  HISTORY_MAX: { kind: 'int', min: 1, default: '1000', description: 'Messages kept per room.' },
  HISTORY_TTL_MS: { kind: 'int', min: 1000, default: '86400000', description: 'How long a room\'s history lives after its last message.' },
  REPLAY_MAX: { kind: 'int', min: 1, default: '500', description: 'Most messages a `join` with `since` replays; more missing means `recovered: false`.' },
  SESSION_GRACE_MS: { kind: 'int', min: 0, default: '30000', description: 'How long a session outlives its connection: reconnecting with `?session=` within it restores the rooms without presence leave/join.' },
  METRICS_PORT: { kind: 'int', min: 0, description: 'Worker only: port for `/metrics`, `/healthz` and `/readyz`. Unset: no HTTP listener.' },
} as const satisfies Record<string, VarSpec>;

export type ConfigName = keyof typeof CONFIG_SPEC;

export interface Config {
  port: number;
  host: string;
  natsUrl?: string;
  redisUrl?: string;
  allowAnonymous: boolean;
  logLevel: string;
  nodeId?: string;
  requestTimeoutMs: number;
  maxFrameBytes: number;
  maxContentChars: number;
  heartbeatMs: number;
  historyMax: number;
  historyTtlMs: number;
  replayMax: number;
  sessionGraceMs: number;
  metricsPort?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type Role = 'embedded' | 'gateway' | 'worker';

function parseOne(name: ConfigName, raw: string): string | number | boolean {
  const spec: VarSpec = CONFIG_SPEC[name];
  const bad = (why: string) => new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: ${why}`);
  switch (spec.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) throw bad('expected a whole number');
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n) || (spec.min !== undefined && n < spec.min)) throw bad(`expected a whole number ≥ ${spec.min ?? 0}`);
      if (name === 'PORT' && n > 65535) throw bad('expected a port number (0–65535)');
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw bad('expected true or false');
    }
    case 'enum': {
      const v = raw.trim().toLowerCase();
      if (!spec.values?.includes(v)) throw bad(`expected one of ${spec.values?.join(', ')}`);
      return v;
    }
    case 'url': {
      for (const part of raw.split(',')) {
        try {
          new URL(part.trim());
        } catch {
          throw bad('expected a URL such as nats://127.0.0.1:4222 or redis://127.0.0.1:6379');
        }
      }
      return raw.trim();
    }
    default:
      if (raw.trim() === '') throw bad('must not be empty');
      return raw.trim();
  }
}

/**
 * Reads the configuration for one role from `env`. Throws `ConfigError` naming the variable for a
 * bad value or a missing required one.
 */
export function loadConfig(role: Role, env: NodeJS.ProcessEnv = process.env): Config {
  const v = (name: ConfigName): string | number | boolean | undefined => {
    const raw = env[name];
    if (raw !== undefined && raw !== '') return parseOne(name, raw);
    const d: string | undefined = (CONFIG_SPEC[name] as VarSpec).default;
    return d === undefined ? undefined : parseOne(name, d);
  };
  const cfg: Config = {
    port: v('PORT') as number,
    host: v('HOST') as string,
    natsUrl: v('NATS_URL') as string | undefined,
    redisUrl: v('REDIS_URL') as string | undefined,
    allowAnonymous: (v('ALLOW_ANONYMOUS') as boolean | undefined) ?? role === 'embedded',
    logLevel: v('LOG_LEVEL') as string,
    nodeId: v('NODE_ID') as string | undefined,
    requestTimeoutMs: v('REQUEST_TIMEOUT_MS') as number,
    maxFrameBytes: v('MAX_FRAME_BYTES') as number,
    maxContentChars: v('MAX_CONTENT_CHARS') as number,
    heartbeatMs: v('HEARTBEAT_MS') as number,
    historyMax: v('HISTORY_MAX') as number,
    historyTtlMs: v('HISTORY_TTL_MS') as number,
    replayMax: v('REPLAY_MAX') as number,
    sessionGraceMs: v('SESSION_GRACE_MS') as number,
    metricsPort: v('METRICS_PORT') as number | undefined,
  };
  if (role !== 'embedded' && !cfg.natsUrl) throw new ConfigError(`NATS_URL is required for the ${role} (e.g. NATS_URL=nats://127.0.0.1:4222)`);
  if (role === 'worker' && !cfg.redisUrl) throw new ConfigError('REDIS_URL is required for the worker (e.g. REDIS_URL=redis://127.0.0.1:6379)');
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
