/**
 * How many chunk requests run at once. The link caps each TCP connection, so more connections
 * mean more goodput until something else (the far end, the aggregate) becomes the limit. Each
 * tick: grow while goodput rises by more than 5%, step back when a growth made it worse, probe
 * again after a few flat ticks, and cut hard when the upstream says it is overloaded (429, 503,
 * refused). Plain resets do not shrink it: on this link they happen whatever the concurrency.
 */
export class ConcurrencyController {
  current: number;
  private lastRate: number | undefined;
  private lastChange: 'up' | 'down' | 'none' = 'none';
  private flatTicks = 0;
  private overload = false;

  constructor(private readonly min: number, private readonly max: number) {
    this.min = Math.max(1, min);
    this.max = Math.max(this.min, max);
    this.current = this.min;
  }

  overloaded(): void {
    this.overload = true;
  }

  /** Feeds the goodput of the last interval; `hasWaitingWork` says whether more connections would have work. */
  tick(rate: number, hasWaitingWork: boolean): number {
    const last = this.lastRate;
    this.lastRate = rate;
    if (this.overload) {
      this.overload = false;
      return this.change(Math.floor(this.current * 0.7), 'down');
    }
    if (last === undefined) return this.change(this.current + (hasWaitingWork ? 1 : 0), hasWaitingWork ? 'up' : 'none');
    if (rate > last * 1.05 && hasWaitingWork) return this.change(this.current + Math.max(1, Math.floor(this.current / 4)), 'up');
    if (this.lastChange === 'up' && rate < last * 0.95) return this.change(this.current - 1, 'down');
    if (++this.flatTicks >= 3 && hasWaitingWork) return this.change(this.current + 1, 'up');
    this.lastChange = 'none';
    return this.current;
  }

  private change(to: number, direction: 'up' | 'down' | 'none'): number {
    this.current = Math.min(this.max, Math.max(this.min, to));
    this.lastChange = direction;
    this.flatTicks = 0;
    return this.current;
  }
}
