import { ConversationsRedis } from './conversations-redis.ts';
import { HistoryRedis } from './history-redis.ts';
import { NotificationsRedis } from './notifications-redis.ts';
import { PresenceRedis } from './presence-redis.ts';
import { RedisConnection, type RedisConnectionOptions, type RedisTarget } from './redis-connection.ts';
import { SessionsRedis } from './sessions-redis.ts';
import { storeOptions, type StoreOptions, type Stores } from './stores.ts';
import { TicketsRedis } from './tickets-redis.ts';
import { TypingRedis } from './typing-redis.ts';

export interface RedisStoresOptions extends Partial<StoreOptions>, RedisConnectionOptions {}

/** The Redis bundle, with its connection reachable (for tests: `stats`). */
export interface RedisStores extends Stores {
  readonly connection: RedisConnection;
}

/**
 * The stores of the cluster: every port on one Redis or on a Redis Cluster (`target`), over one
 * shared connection with the scripts of `shared/redis/` loaded. Every script touches the keys of
 * one hash tag, so each is one slot on a Cluster. Each call is one round trip (a bulk
 * `notificationsAdd`: one per 500 users on one Redis; on a Cluster, one per node and batch).
 * With `waitReplicas`, the writes a client is told are done (a publish, a notification, a session
 * change) are acknowledged only once that many replicas have them. Failure behaviour: see
 * `RedisConnection`.
 */
export function redisStores(target: RedisTarget, opts: RedisStoresOptions = {}): RedisStores {
  const { keyPrefix, commandTimeoutMs, waitReplicas, waitTimeoutMs, ...rest } = opts;
  const o = storeOptions(rest);
  const connection = new RedisConnection(target, { keyPrefix, commandTimeoutMs, waitReplicas, waitTimeoutMs });
  return {
    connection,
    history: new HistoryRedis(connection, o),
    conversations: new ConversationsRedis(connection, o),
    presence: new PresenceRedis(connection, { ttlMs: o.historyTtlMs }),
    sessions: new SessionsRedis(connection),
    typing: new TypingRedis(connection),
    notifications: new NotificationsRedis(connection, o),
    tickets: new TicketsRedis(connection),
    ping: () => connection.ping(),
    close: () => connection.close(),
  };
}
