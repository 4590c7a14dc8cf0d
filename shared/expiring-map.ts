import type { Clock } from './clock.ts';

/** What every in-memory store is given: its clock, and whether its bundle was closed. */
export interface MemoryContext {
  clock: Clock;
  /** Throws once the bundle is closed: calls after `close()` reject, as on Redis. */
  assertOpen(): void;
}

/**
 * A Map whose values carry their own expiry (`expiresAt`, ms on the store's clock), the in-memory
 * counterpart of keys with a TTL. Reads are exact: `get` never returns an expired value, and drops
 * it. `sweep` frees what is never read again. Values are mutable in place (an append pushes its
 * room's `expiresAt` back) and the map reads `expiresAt` when it checks, so nothing is re-inserted.
 *
 * `onDrop` runs whenever a value leaves the map other than by `clear`: expired (on a read or a
 * sweep) or deleted. It is how a store keeps what depends on a value in step with it, e.g. a
 * session's index entries, or a room's epoch that lives only as long as the room has members.
 */
export class ExpiringMap<K, V extends { expiresAt: number }> {
  private readonly map = new Map<K, V>();

  constructor(private readonly onDrop?: (key: K, value: V) => void) {}

  get size(): number {
    return this.map.size;
  }

  /** The value if it is live at `now`; an expired one is dropped. */
  get(key: K, now: number): V | undefined {
    const v = this.map.get(key);
    if (v && v.expiresAt <= now) {
      this.drop(key, v);
      return undefined;
    }
    return v;
  }

  /** The value whether expired or not, for bookkeeping that must not drop anything. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): V {
    this.map.set(key, value);
    return value;
  }

  delete(key: K): boolean {
    const v = this.map.get(key);
    if (!v) return false;
    this.drop(key, v);
    return true;
  }

  /** Keys in insertion order, live or not (check with `get`). A snapshot: safe to drop while iterating. */
  keys(): K[] {
    return [...this.map.keys()];
  }

  /** Drops every expired value. */
  sweep(now: number): void {
    for (const [k, v] of this.map) if (v.expiresAt <= now) this.drop(k, v);
  }

  clear(): void {
    this.map.clear();
  }

  private drop(key: K, value: V): void {
    this.map.delete(key);
    this.onDrop?.(key, value);
  }
}
