/**
 * A token bucket kept as a virtual clock: each grant pushes `nextFree` forward by n/rate seconds,
 * and a caller waits until its slot. A burst of up to `burstMs` of credit is allowed so an idle
 * connection does not restart from zero. Shared pacers (the aggregate cap) serve callers in order.
 */
export class Pacer {
  private nextFree = 0;

  constructor(public bytesPerSecond: number, private readonly burstMs = 50) {}

  /** Milliseconds to wait before sending n bytes (0 when unlimited). Reserves the slot. */
  reserve(n: number, now = performance.now()): number {
    if (!(this.bytesPerSecond > 0) || !Number.isFinite(this.bytesPerSecond)) return 0;
    const start = Math.max(this.nextFree, now - this.burstMs);
    this.nextFree = start + (n / this.bytesPerSecond) * 1000;
    return Math.max(0, start - now);
  }
}
