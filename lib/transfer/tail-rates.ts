/**
 * What the tail plan (tail-plan.ts) is told of a transfer's rates, every figure on one clock: the
 * ranges' own (LiveRange askedAt and firstByte, range-fetcher.ts), net of this process's own lag
 * (loop-lag.ts ownNow). The plan compares the time a running range still needs at its own rate
 * with the time a new connection would need at the transfer's rate, and both rates must be bytes
 * that really arrived over the time this process really had to read them. On the plain clock a
 * second the process could not run (its bytes waited unread in the sockets) counts as a second
 * the link delivered nothing: after such a pause the transfer's rate read low beside the ranges'
 * own (lag-net) rates, and the plan split and copied by a figure of our own load, not of the link.
 * The round trip (stall-watch.ts) stays a least sample on the plain clock: one taken while the
 * process was starved only comes out long, and the least one drops it, so it holds on either clock.
 *
 * The transfer's snapshot rate (what a user waiting sees) stays on the plain clock: another meter.
 */
import { ownNow } from './loop-lag.ts';
import { rangeRate, type LiveRange } from './range-fetcher.ts';
import { RateMeter } from './rate-meter.ts';

/** Weight of the latest ended request in the rate a new connection is expected to deliver. */
const REQUEST_RATE_WEIGHT = 0.3;

export class TailRates {
  /** The transfer's goodput, on `now`. */
  private readonly meter: RateMeter;
  /** Bytes/s of the transfer's requests that ended, from their first byte (moving average). */
  private requestRate = 0;

  /** `now`: the ranges' clock (by default the process's, net of its own lag). */
  constructor(readonly now: () => number = ownNow) {
    this.meter = new RateMeter(undefined, undefined, now());
  }

  /** Bytes of the transfer arrived. */
  add(bytes: number): void {
    this.meter.add(bytes, this.now());
  }

  /** The request of `r` ended with every byte it asked: its rate from its first byte counts. */
  requestEnded(r: LiveRange): void {
    const rate = rangeRate(r, this.now(), 0);
    if (rate === undefined || !(rate > 0)) return;
    this.requestRate = this.requestRate === 0 ? rate : this.requestRate * (1 - REQUEST_RATE_WEIGHT) + rate * REQUEST_RATE_WEIGHT;
  }

  /**
   * Bytes/s a new connection is expected to deliver (TailFigures.perConnection): what the
   * transfer's ended requests did; before any ended, its goodput shared by the `running` ones.
   */
  perConnection(running: number): number {
    return this.requestRate || this.meter.rate(this.now()) / Math.max(1, running);
  }
}
