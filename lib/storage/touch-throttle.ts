/**
 * Which blobs are due a touch (the access time eviction orders by): at most one per digest per
 * interval, whatever the request rate. Memory stays flat however many digests are served: past
 * `kept` remembered digests, those touched longer than an interval ago are forgotten (they decide
 * nothing any more), so what is left is bounded by twice the digests touched within one interval.
 */
export class TouchThrottle {
  private readonly last = new Map<string, number>();
  /** Size after the last sweep: the next one waits until it doubled (a sweep that frees nothing is not redone per call). */
  private sweptAt = 0;

  /** everyMs: the least time between two touches of one blob (a minute unless the caller says). */
  constructor(private readonly everyMs = 60_000, private readonly kept = 4096) {}

  /** True when `digest` was not touched within the interval (and counts it touched at `now`). */
  due(digest: string, now: number): boolean {
    if (now - (this.last.get(digest) ?? -Infinity) < this.everyMs) return false;
    if (this.last.size >= Math.max(this.kept, 2 * this.sweptAt)) {
      for (const [d, at] of this.last) if (now - at >= this.everyMs) this.last.delete(d);
      this.sweptAt = this.last.size;
    }
    this.last.set(digest, now);
    return true;
  }

  /** The blob is gone: its next touch is due at once. */
  forget(digest: string): void {
    this.last.delete(digest);
  }

  /** Digests remembered now. */
  get size(): number {
    return this.last.size;
  }
}
