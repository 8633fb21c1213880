/**
 * How many chunk requests run at once on one link. The link caps each TCP connection, so more
 * connections mean more goodput until something else (the aggregate, the far end) becomes the
 * limit. Two phases, as in TCP:
 *
 * - slow start: double every tick while goodput grows about in proportion (at least half the
 *   gain the extra connections would bring at the old per-connection rate). Two ticks in a row
 *   that do not end it (one alone is noise: a stalled disk write or a busy CPU books a tick's
 *   bytes in the next), keeping the connections the measured goodput justifies plus a margin,
 *   since on a reset-prone link some connections are always between a reset and a retry.
 * - avoidance: judged over a few ticks at once (one tick is noisy): grow by a quarter while
 *   goodput rises by more than 5%; a growth that did not raise it is undone (the connections it
 *   added only hold more bytes in flight: more to lose at a reset or a crash, more load on the far
 *   end); after flat rounds, probe with one more connection, undone the same way if useless.
 *
 * An overloaded upstream (429, 503, refused) cuts hard and ends slow start. Plain resets do not
 * shrink it: on this link they happen whatever the concurrency.
 */
export interface ConcurrencyOptions {
  /** Ticks averaged per decision once slow start is over (default 3). */
  avoidanceTicks?: number;
  /** Connections kept beyond what the measured goodput needs when slow start ends (default 1.25). */
  margin?: number;
}

/** What a controller learned about its link, to start from next time (link-state.ts). */
export interface LearnedConcurrency {
  connections: number;
  /** Still doubling: slow start had not found where goodput stops following. */
  slowStart: boolean;
}

export class ConcurrencyController {
  current: number;
  private readonly min: number;
  private readonly max: number;
  private readonly avoidanceTicks: number;
  private readonly margin: number;
  private slowStartOn = true;
  /**
   * Goodput and concurrency of the previous slow-start tick (the one before a doubling while it is
   * judged again); `delivering`, the connections that delivered on average over it, when told.
   */
  private last: { rate: number; concurrency: number; delivering?: number | undefined } | undefined;
  /** A leap was taken: the next tick measures the level before it (the connections added deliver only a round trip later). */
  private leapedFrom: number | undefined;
  /**
   * Where slow start ends at the least after a leap: the first doubling's level, which it reached
   * unjudged before the leap took both at once (an aggregate-capped link kept at least that).
   */
  private leapFloor = 0;
  /** The last doubling did not pay off in one tick: the next judges it again, and ends slow start if it does not either. */
  private doubted = false;
  /** Avoidance: rates of the ticks of the current round, and the previous round's average. */
  private round: number[] = [];
  private lastRoundRate: number | undefined;
  private lastChange: 'up' | 'down' | 'none' = 'none';
  /** Connections added by the last 'up' change. */
  private lastStep = 0;
  private flatRounds = 0;
  private overload = false;

  constructor(min: number, max: number, opts: ConcurrencyOptions = {}) {
    this.min = Math.max(1, min);
    this.max = Math.max(this.min, max);
    this.current = this.min;
    this.avoidanceTicks = Math.max(1, opts.avoidanceTicks ?? 3);
    this.margin = opts.margin ?? 1.25;
  }

  get slowStart(): boolean {
    return this.slowStartOn;
  }

  learned(): LearnedConcurrency {
    return { connections: this.current, slowStart: this.slowStartOn };
  }

  /** Starts where an earlier controller of the same link left off (clamped to this one's bounds). */
  restore(from: LearnedConcurrency): void {
    if (!Number.isFinite(from.connections)) return;
    this.current = Math.min(this.max, Math.max(this.min, Math.round(from.connections)));
    if (!from.slowStart) this.endSlowStart();
  }

  overloaded(): void {
    this.overload = true;
  }

  /**
   * Slow start's two unjudged doublings at once (a fresh link's first answer: link-budget.ts), as
   * far as `work` (the requests running and waiting) would use them: the link has said nothing yet
   * that either would be judged by. The next tick measures the level before the leap, the one after
   * judges the leap against it. Nothing waiting: no leap.
   */
  leap(work: number): number {
    if (!this.slowStartOn || work <= this.current) return this.current;
    const before = this.current;
    // The second doubling only where the first leaves work waiting (as its tick did: only on a link saturated after the first).
    this.change(Math.min(this.current * 4, Math.max(this.current * 2, work)), 'up');
    this.leapFloor = Math.min(this.current, before * 2);
    this.last = undefined;
    this.doubted = false;
    this.leapedFrom = before;
    return this.current;
  }

  /**
   * Feeds the goodput of the last interval. `hasWaitingWork`: more connections would have work
   * (growth needs it). `saturated`: every connection allowed was in use at some point of the
   * interval, so the goodput says what this concurrency gives (default: `hasWaitingWork`). A
   * single transfer at its own cap is saturated with nothing waiting. `delivering`: the connections
   * that delivered on average over the interval, when the caller knows (a request waits a round
   * trip before it delivers): slow start's judgment is then of the goodput per connection that
   * delivered, not per connection allowed.
   */
  tick(rate: number, hasWaitingWork: boolean, saturated = hasWaitingWork, delivering?: number): number {
    const leapedFrom = this.leapedFrom;
    this.leapedFrom = undefined;
    if (this.overload) {
      this.overload = false;
      this.endSlowStart();
      return this.change(Math.floor(this.current * 0.7), 'down');
    }
    return this.slowStartOn ? this.slowStartTick(rate, hasWaitingWork, saturated, delivering, leapedFrom) : this.avoidanceTick(rate, hasWaitingWork);
  }

  private slowStartTick(rate: number, hasWaitingWork: boolean, saturated: boolean, delivering: number | undefined, leapedFrom: number | undefined): number {
    // Nothing to learn from an interval where the connections allowed were not all in use.
    if (!saturated) return this.current;
    const last = this.last;
    // The round trip after a leap measures the level it leapt from; nothing is judged or doubled yet.
    if (leapedFrom !== undefined) {
      this.last = { rate, concurrency: leapedFrom, delivering };
      return this.current;
    }
    this.last = { rate, concurrency: this.current, delivering };
    if (last === undefined || last.rate <= 0 || last.concurrency >= this.current) return hasWaitingWork ? this.change(this.current * 2, 'up') : this.current;
    const before = last.delivering ?? last.concurrency;
    const now = delivering ?? this.current;
    if (now - before < (this.current - last.concurrency) / 4) {
      // The connections added have not delivered yet (their round trip): judge once they have.
      this.last = last;
      return this.current;
    }
    const perConnection = last.rate / Math.max(1, before);
    const promised = perConnection * (now - before);
    if (rate - last.rate >= promised / 2) {
      this.doubted = false;
      if (this.current >= this.max || !hasWaitingWork) return this.current;
      return this.change(this.current * 2, 'up');
    }
    if (!this.doubted) {
      // One tick says little (its bytes may be booked in the next): judge the doubling again on the next.
      this.doubted = true;
      this.last = last;
      return this.current;
    }
    // The link stopped giving each connection its rate: keep what the goodput needs, plus a margin.
    const floor = Math.max(last.concurrency, this.leapFloor);
    this.endSlowStart();
    const needed = Math.ceil((rate / perConnection) * this.margin);
    return this.change(Math.min(this.current, Math.max(floor, needed)), 'none');
  }

  private avoidanceTick(rate: number, hasWaitingWork: boolean): number {
    this.round.push(rate);
    if (this.round.length < this.avoidanceTicks) return this.current;
    const avg = this.round.reduce((a, b) => a + b, 0) / this.round.length;
    this.round = [];
    const last = this.lastRoundRate;
    this.lastRoundRate = avg;
    if (last === undefined) return this.current;
    if (avg > last * 1.05 && hasWaitingWork) return this.change(this.current + Math.max(1, Math.floor(this.current / 4)), 'up');
    if (this.lastChange === 'up') return this.change(this.current - this.lastStep, 'down');
    if (++this.flatRounds >= 3 && hasWaitingWork) return this.change(this.current + 1, 'up');
    this.lastChange = 'none';
    return this.current;
  }

  private endSlowStart(): void {
    this.slowStartOn = false;
    this.last = undefined;
    this.leapedFrom = undefined;
    this.leapFloor = 0;
    this.doubted = false;
    this.round = [];
    this.lastRoundRate = undefined;
  }

  private change(to: number, direction: 'up' | 'down' | 'none'): number {
    const before = this.current;
    this.current = Math.min(this.max, Math.max(this.min, to));
    this.lastStep = direction === 'up' ? this.current - before : 0;
    this.lastChange = direction;
    this.flatRounds = 0;
    return this.current;
  }
}
