/** Goodput over a moving window, in bytes per second, from time buckets (memory stays fixed). */
export class RateMeter {
  private readonly buckets: number[];
  private readonly stamps: number[];
  private readonly startedAt: number;

  constructor(private readonly windowMs = 5000, private readonly bucketMs = 250, now = performance.now()) {
    const n = Math.ceil(windowMs / bucketMs);
    this.buckets = new Array<number>(n).fill(0);
    this.stamps = new Array<number>(n).fill(-1);
    this.startedAt = now;
  }

  add(bytes: number, now = performance.now()): void {
    const slot = Math.floor(now / this.bucketMs);
    const i = slot % this.buckets.length;
    if (this.stamps[i] !== slot) {
      this.stamps[i] = slot;
      this.buckets[i] = 0;
    }
    this.buckets[i] = (this.buckets[i] as number) + bytes;
  }

  /** Bytes/s over the window, or over the time since start when that is shorter. */
  rate(now = performance.now()): number {
    const slot = Math.floor(now / this.bucketMs);
    const oldest = slot - this.buckets.length + 1;
    let sum = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      const s = this.stamps[i] as number;
      if (s >= oldest && s <= slot) sum += this.buckets[i] as number;
    }
    const spanMs = Math.min(this.windowMs, Math.max(now - this.startedAt, this.bucketMs));
    return (sum * 1000) / spanMs;
  }
}
