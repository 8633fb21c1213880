/**
 * Time this process could not run, told from a timer that comes late: a tick due 100 ms after the
 * last one that runs 700 ms after it means the process ran nothing for ~600 ms (starved of CPU on a
 * loaded machine, a long GC pause, a long callback). Meanwhile the bytes the link delivered waited
 * in the socket buffers unread: a connection then looks silent although the link was not. The
 * link's silences (stall-watch.ts, the attempt's fixed timer in range-fetcher.ts, a range with no
 * first byte in tail-plan.ts, a dark or silent relay in lib/upstream/relay-pool.ts) and the rates
 * compared with them (tail-rates.ts, link-budget.ts's ticks) are measured on `now()`: the clock
 * net of that lag. A tick overdue
 * right now counts too, so a judge whose own timer runs before the tick in a late turn of the
 * event loop sees the same figure. Lag shorter than one tick interval may go unseen.
 *
 * The ticks run while someone holds the tracker (an attempt running); while nobody does, the
 * clock runs as the plain one. share() says how much of the last second the process could not run:
 * starved, it reads its connections slowly, and the tail does not take a range's slowness for the
 * link's (tail-plan.ts).
 */

/** How often the tracker expects its tick. */
const TICK_MS = 100;
/** share() looks back about this far. */
const SHARE_WINDOW_MS = 1000;

export class LoopLag {
  /** Lag seen up to the last tick. */
  private total = 0;
  /** When the last tick ran; undefined while nobody holds the tracker. */
  private last: number | undefined;
  private holders = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Of the time up to the last tick, the share lag took lately (a moving average over about SHARE_WINDOW_MS). */
  private recentShare = 0;
  /** When the first tick ran: until the window is full, what was seen since counts whole. */
  private since: number | undefined;
  private releasedAt: number | undefined;

  constructor(private readonly clock: () => number = () => performance.now(), readonly intervalMs = TICK_MS) {}

  /** The clock net of the lag so far: the time this process could run. */
  now(at = this.clock()): number {
    return at - this.lagged(at);
  }

  /** Lag up to `at`: the late part of every tick, and of the one overdue at `at`. */
  lagged(at = this.clock()): number {
    return this.total + (this.last === undefined ? 0 : Math.max(0, at - this.last - this.intervalMs));
  }

  /**
   * Of the last second or so up to `at`, the share of the time this process could not run (0 to
   * 1): near 0 on a machine with CPU to spare, half when it runs one turn in two. undefined until
   * the ticks have run that long (since the first hold, or a hold after a longer pause).
   */
  share(at = this.clock()): number | undefined {
    if (this.since === undefined || at - this.since < SHARE_WINDOW_MS) return undefined;
    return this.last === undefined ? this.recentShare : this.blend(at);
  }

  /** @internal A tick ran at `at` (the first one starts the count). */
  tick(at = this.clock()): void {
    if (this.last !== undefined) {
      this.total += Math.max(0, at - this.last - this.intervalMs);
      this.recentShare = this.blend(at);
    }
    this.since ??= at;
    this.last = at;
  }

  /** recentShare with the time since the last tick in it (its late part as lag). */
  private blend(at: number): number {
    const elapsed = at - (this.last as number);
    if (!(elapsed > 0)) return this.recentShare;
    const late = Math.max(0, elapsed - this.intervalMs) / elapsed;
    const weight = Math.min(1, elapsed / Math.min(SHARE_WINDOW_MS, at - (this.since ?? at)));
    return this.recentShare * (1 - weight) + late * weight;
  }

  /** Ticks until the returned function is called (by every holder). */
  hold(): () => void {
    if (this.holders++ === 0) {
      // Held again after a while: what share() said then says nothing of now.
      if (this.releasedAt !== undefined && this.clock() - this.releasedAt > SHARE_WINDOW_MS) {
        this.recentShare = 0;
        this.since = undefined;
      }
      this.tick();
      this.timer = setInterval(() => this.tick(), this.intervalMs);
      this.timer.unref();
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.holders > 0) return;
      clearInterval(this.timer);
      this.timer = undefined;
      // The overdue part up to now stays counted: a reading taken before release never goes back.
      this.total = this.lagged();
      this.last = undefined;
      this.releasedAt = this.clock();
    };
  }
}

/** The process's own tracker: its lag is the process's, whoever measures a silence. */
export const loopLag = new LoopLag();

/** The process's clock net of its own lag (loopLag). */
export const ownNow = (): number => loopLag.now();
