/**
 * Calls made in one event-loop turn, sent together once the turn's synchronous work is done (a
 * microtask): one command, one reply and one round trip for many callers instead of one each. The
 * worker handles the requests of one bus message in one turn, so under load a turn holds many
 * calls of the same kind (the appends of a burst of publishes, the session creates of a burst of
 * connects). Each send carries at most `max` items, in the order they were added; a send that
 * fails rejects each of its callers with its error.
 */
export class TurnBatch<I, R> {
  private pending: { item: I; resolve(result: R): void; reject(err: unknown): void }[] = [];

  constructor(
    private readonly send: (items: I[]) => Promise<R[]>,
    private readonly max = 64,
  ) {}

  add(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ item, resolve, reject }) === 1) queueMicrotask(() => this.flush());
    });
  }

  private flush(): void {
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += this.max) void this.run(all.slice(i, i + this.max));
  }

  private async run(batch: typeof this.pending): Promise<void> {
    let out: R[];
    try {
      out = await this.send(batch.map((p) => p.item));
      if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} was answered with ${out.length} results`);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(out[i]!);
  }
}
