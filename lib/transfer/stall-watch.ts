/**
 * Stalls told from what the link is doing. A connection that delivers nothing for a few times the
 * link's round trip and a few times its own recent gap between reads, while another connection
 * of the transfer delivered since its last byte (the link works, this connection does not), is
 * stalled: it is cut (StallError) and its range resumes on a new connection. The last connection
 * of a blob counts too: its peers that finished delivered after it went quiet. One watch serves a
 * whole link (link-budget.ts), so the peers are every transfer's connections. A connection with no
 * peer to compare with (skopeo fetching one small layer at a time) is judged on its own history,
 * allowed twice the silence. The fixed stallSeconds timer of the attempt (range-fetcher.ts) stays
 * the upper bound always.
 */
import { StallError } from './errors.ts';

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
  /** The attempt is over (whatever the outcome). */
  end(): void;
}

interface Attempt {
  startedAt: number;
  lastAt: number;
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

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Least time to headers seen: the link's round trip plus the far end's answer. */
  get rtt(): number | undefined {
    return this.rttMs;
  }

  /** Watches one attempt; `cut` aborts it. */
  start(cut: (reason: Error) => void): WatchedAttempt {
    const t = this.now();
    const a: Attempt = { startedAt: t, lastAt: t, gapMs: undefined, cut };
    this.attempts.add(a);
    this.timer ??= setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
    return {
      gotHeaders: () => {
        const now = this.now();
        const rtt = now - a.startedAt;
        this.rttMs = this.rttMs === undefined ? rtt : Math.min(this.rttMs, rtt);
        a.lastAt = now;
      },
      gotBytes: () => {
        const now = this.now();
        const gap = now - a.lastAt;
        a.gapMs = a.gapMs === undefined ? gap : a.gapMs * 0.8 + gap * 0.2;
        a.lastAt = now;
        this.lastBy = a;
        this.lastByAt = now;
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

  /** How long `a` may stay silent. */
  private allowedMs(a: Attempt): number {
    return Math.max(MIN_SILENCE_MS, RTT_FACTOR * (this.rttMs ?? 0), GAP_FACTOR * (a.gapMs ?? 0));
  }

  /** @internal Cuts the attempts silent past what is allowed while a peer delivered. */
  check(now = this.now()): void {
    for (const a of this.attempts) {
      const silent = now - a.lastAt;
      if (silent <= this.allowedMs(a)) continue;
      // The last bytes on the link went to another connection: they came after this one's.
      // Otherwise only a connection that has a rhythm of its own may be judged on it.
      const peerDelivered = this.lastBy !== undefined && this.lastBy !== a && this.lastByAt > a.lastAt;
      if (!peerDelivered && (a.gapMs === undefined || silent <= ALONE_FACTOR * this.allowedMs(a))) continue;
      this.attempts.delete(a);
      a.cut(new StallError(Math.round(silent) / 1000, 'while other connections delivered'));
    }
  }
}
