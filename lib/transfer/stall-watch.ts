/**
 * Stalls told from what the link is doing. A connection that delivers nothing for a few times the
 * link's round trip and a few times its own recent gap between reads, while another connection
 * of the transfer delivered since its last byte (the link works, this connection does not), is
 * stalled: it is cut (StallError) and its range resumes on a new connection. The last connection
 * of a blob counts too: its peers that finished delivered after it went quiet. One watch serves a
 * whole link (link-budget.ts), so the peers are every transfer's connections. A connection with no
 * peer to compare with (skopeo fetching one small layer at a time) is judged on its own history,
 * allowed twice the silence. When most connections are quiet together the far end paces them
 * (a relay streams as its own transfer arrives): none is cut. Only answered requests are judged, and
 * each cut of a range doubles the silence its next attempt is allowed. The fixed stallSeconds timer of the attempt (range-fetcher.ts) stays
 * the upper bound always (on a starved process, 3x stallSeconds of the plain clock). Silence is counted on the clock net of this process's own lag (loop-lag.ts):
 * while the process could not run (starved of CPU), the link's bytes waited in the sockets unread.
 */
import { StallError } from './errors.ts';
import { ownNow } from './loop-lag.ts';

/** Never cut a connection silent for less than this. */
const MIN_SILENCE_MS = 1000;
/** Silence allowed, in round trips (the least time to a response's headers seen). */
const RTT_FACTOR = 4;
/** Silence allowed, in the connection's own recent gaps between reads. */
const GAP_FACTOR = 8;
const CHECK_MS = 100;
/** A connection judged on its own history alone is allowed this many times the silence. */
const ALONE_FACTOR = 2;

export interface WatchedAttempt {
  /** Response headers arrived. */
  gotHeaders(): void;
  /** Body bytes arrived. */
  gotBytes(): void;
  /** Its bytes are being written to our own store: not silent until the returned function says the write is done. */
  storing(): () => void;
  /** The attempt is over (whatever the outcome). */
  end(): void;
}

interface Attempt {
  /** When it was asked, on the plain clock (its round trip). */
  startedAt: number;
  /** Headers arrived: until then the far end may be working (a relay fetching), the timer judges. */
  answered: boolean;
  /** Multiplies the silence allowed (a range cut before waits longer). */
  patience: number;
  lastAt: number;
  /** Waiting on our own store's write: never silent meanwhile. */
  storing: boolean;
  /** Moving average of the gap between reads, once there were two. */
  gapMs: number | undefined;
  cut(reason: Error): void;
}

export class StallWatch {
  private readonly attempts = new Set<Attempt>();
  private rttMs: number | undefined;
  /** The attempt that delivered body bytes last, of all so far (ended ones included). */
  private lastBy: Attempt | undefined;
  private lastByAt = 0;
  private timer: NodeJS.Timeout | undefined;

  /**
   * `now`: the clock silences are counted on (by default the process's, net of its own lag).
   * `wall`: the clock round trips are timed on (by default the plain one; an injected `now` alone
   * serves as both). A round trip timed net of lag would come out short when headers arrived while
   * the process was starved, and the least one seen would stay short for the link's life; on the
   * plain clock such a sample only comes out long, and the least one seen drops it.
   */
  constructor(
    private readonly now: () => number = ownNow,
    private readonly wall: () => number = now === ownNow ? () => performance.now() : now,
  ) {}

  /** Least time to headers seen: the link's round trip plus the far end's answer. */
  get rtt(): number | undefined {
    return this.rttMs;
  }

  /** Watches one attempt; `cut` aborts it. `patience` multiplies the silence it is allowed. */
  start(cut: (reason: Error) => void, patience = 1): WatchedAttempt {
    const t = this.now();
    const a: Attempt = { startedAt: this.wall(), answered: false, patience, lastAt: t, storing: false, gapMs: undefined, cut };
    this.attempts.add(a);
    this.timer ??= setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
    return {
      gotHeaders: () => {
        const rtt = this.wall() - a.startedAt;
        this.rttMs = this.rttMs === undefined ? rtt : Math.min(this.rttMs, rtt);
        a.lastAt = this.now();
        a.answered = true;
      },
      gotBytes: () => {
        const now = this.now();
        const gap = now - a.lastAt;
        a.gapMs = a.gapMs === undefined ? gap : a.gapMs * 0.8 + gap * 0.2;
        a.lastAt = now;
        this.lastBy = a;
        this.lastByAt = now;
      },
      storing: () => {
        a.storing = true;
        return () => {
          a.storing = false;
          // The wait was ours, not a gap of the link's: silence counts from its end.
          a.lastAt = Math.max(a.lastAt, this.now());
        };
      },
      end: () => {
        this.attempts.delete(a);
        if (this.attempts.size === 0 && this.timer) {
          clearInterval(this.timer);
          this.timer = undefined;
        }
      },
    };
  }

  /**
   * Whether the link delivers while `a` is silent: at least half of the other answered
   * connections delivered well after `a`'s last byte (one quiet connection among busy ones, or the
   * first of several that stalled one after another; when most went quiet together, the far end
   * or this process paused them all, or a relay paces them as its own transfer arrives).
   * With none delivering: another delivered after `a`'s last byte and `a` is the only one left
   * (the last range of a blob), or `a` has a rhythm of its own and broke it for twice the silence
   * allowed (every connection of the link stalled).
   */
  private linkWorksWithout(a: Attempt, now: number): boolean {
    let others = 0;
    let delivering = 0;
    for (const b of this.attempts) {
      if (b === a || !b.answered) continue;
      others++;
      if (b.lastAt > a.lastAt + this.allowedMs(a) / 2) delivering++;
    }
    if (delivering > 0) return delivering * 2 >= others;
    if (others === 0 && this.lastBy !== undefined && this.lastBy !== a && this.lastByAt > a.lastAt) return true;
    return a.gapMs !== undefined && now - a.lastAt > ALONE_FACTOR * this.allowedMs(a);
  }

  /** How long `a` may stay silent. */
  private allowedMs(a: Attempt): number {
    return a.patience * Math.max(MIN_SILENCE_MS, RTT_FACTOR * (this.rttMs ?? 0), GAP_FACTOR * (a.gapMs ?? 0));
  }

  /** @internal Cuts the attempts silent past what is allowed while a peer delivered. */
  check(now = this.now()): void {
    for (const a of this.attempts) {
      if (!a.answered || a.storing) continue;
      const silent = now - a.lastAt;
      if (silent <= this.allowedMs(a)) continue;
      if (!this.linkWorksWithout(a, now)) continue;
      this.attempts.delete(a);
      a.cut(new StallError(Math.round(silent) / 1000, 'while other connections delivered'));
    }
  }
}
