/**
 * Deadlines of many items (connections whose credentials expire) on one timer. A `setTimeout` per
 * connection cost about 300 bytes each (the Timeout, its closure and context, the timer list
 * entry); here an item costs one entry in the Set of its second. Deadlines are kept to the second
 * (rounded up): a JWT's `exp` is in seconds anyway, so an item fires at most a second late and
 * never early.
 */
const BUCKET_MS = 1000;
/** Longest a timer may be set for (setTimeout's limit); later buckets are reached by re-arming. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class Deadlines<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | undefined;
  /** The bucket the timer is set for (Infinity: none). */
  private armedFor = Infinity;

  /** `fire` runs once per item whose deadline passed; `failed` gets what it throws. */
  constructor(
    private readonly fire: (item: T) => void,
    private readonly failed: (err: unknown) => void,
  ) {}

  /** Fires `item` at `at` (ms since the epoch). Returns the key `cancel` needs. */
  add(item: T, at: number): number {
    const key = Math.ceil(at / BUCKET_MS);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new Set()));
    bucket.add(item);
    if (key < this.armedFor) this.arm(key);
    return key;
  }

  /** `item` will not fire for the deadline `add` returned `key` for. */
  cancel(item: T, key: number): void {
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    bucket.delete(item);
    if (bucket.size === 0) this.buckets.delete(key);
  }

  get size(): number {
    let n = 0;
    for (const bucket of this.buckets.values()) n += bucket.size;
    return n;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    this.buckets.clear();
  }

  private arm(key: number): void {
    clearTimeout(this.timer);
    this.armedFor = key;
    this.timer = setTimeout(() => this.run(), Math.min(MAX_DELAY_MS, Math.max(0, key * BUCKET_MS - Date.now())));
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Math.floor(Date.now() / BUCKET_MS);
    let next = Infinity;
    for (const [key, bucket] of this.buckets) {
      if (key > now) {
        if (key < next) next = key;
        continue;
      }
      this.buckets.delete(key);
      for (const item of bucket) {
        try {
          this.fire(item);
        } catch (err) {
          this.failed(err);
        }
      }
    }
    if (next !== Infinity) this.arm(next);
  }
}
