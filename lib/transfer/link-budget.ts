/**
 * The connections one link (one upstream) may carry, shared by every transfer over it. Docker
 * pulls three layers at once and a pre-warm pulls several images: each transfer adapting alone
 * would overshoot together, or each would start from the floor again. Here the total adapts
 * (concurrency.ts) on the goodput of all of them, and free connections go round-robin to the
 * transfers clients read, lowest chunk first within each, so every client's blob keeps moving
 * (but one image's blobs, a group, in the image's order: nextReadShare). A
 * transfer a client is reading goes before those nobody reads yet (a prefetch), and those go
 * oldest first: skopeo reads one layer at a time, so the layer it waits for finishes first and is
 * read while the link carries the next ones, in the order it will ask for them, instead of every
 * layer finishing together at the end and being read after the link went quiet.
 * A small blob (a config) goes before both, past the limit if need be (SMALL_EXTRA_CONNECTIONS).
 */
import { ConcurrencyController, type LearnedConcurrency } from './concurrency.ts';
import { ownNow } from './loop-lag.ts';
import { StallWatch } from './stall-watch.ts';
import type { ByteRange } from '../oci/range.ts';

/**
 * Connections a link may carry beyond its limit for small blobs (link.share's `small`): a 1 KB
 * config asked while every connection carries a layer's range would wait for one of them to end,
 * seconds on a slow link or behind a cold relay; one request of a small blob costs the link little.
 */
export const SMALL_EXTRA_CONNECTIONS = 4;

/**
 * Requests a link may carry beyond its limit, each in the last round trip of one it follows (its
 * connection ending: LinkGrant.ending): a quarter of the limit, rounded down. Each request waits a
 * round trip for its first byte with nothing on its connection (400 ms at 256 KiB/s is 100 KiB of
 * the link); the next one asked a round trip before the current one ends gets its first byte as
 * that one gets its last, so the round trip is hidden (pipelining in effect, on a connection of its
 * own: one connection carries one request, the link caps each). The upstream's `connections`
 * (40 by default) leave room for them beside transfer.maxConnections (32). A link of fewer than 4
 * connections keeps one request per connection: one more would be a large share of it (a
 * deliberately narrow link: maxConnections 1 is one connection).
 */
export function overlapFor(limit: number, connections = Infinity): number {
  // Never past the sockets the upstream's agent holds (`connections`): the request would wait for one.
  return Math.max(0, Math.min(Math.floor(limit / 4), connections - limit));
}

/**
 * What a request tells its link as it nears its end: `ending` once it is within a round trip of
 * it (LinkBudget.overlapFor); `unending` when it goes on after all (a reset in that round trip: its
 * retry holds a connection of the link again, counted, rather than delivering beside the next).
 */
export interface RequestHandover {
  /**
   * Its request's last byte is about a round trip away: the next request may be asked now. False
   * while the link carries as many such requests as it may (overlapFor): ask again later.
   */
  ending(): boolean;
  unending(): void;
  /** Its request was answered: it delivers from now on until released (what slow start judges, LinkBudget.tick). */
  answered(): void;
}

/** A connection granted: `release` once its request is over; see RequestHandover. */
export interface LinkGrant extends RequestHandover {
  (): void;
}

/** What a link learned: its connections and goodput, kept between transfers and restarts (link-state.ts). */
export interface LearnedLink extends LearnedConcurrency {
  /** Goodput of the last busy interval, bytes/s. */
  rate: number;
}

export interface LinkBudgetOptions {
  minConnections: number;
  maxConnections: number;
  /** How often the total is reconsidered (default 1000 ms). */
  adaptIntervalMs?: number;
  /** Where an earlier budget of this link left off. */
  learned?: LearnedLink;
  /** Told what the link learned, after each change of it. */
  onLearned?: (learned: LearnedLink) => void;
  /**
   * The total decided elsewhere: an upstream of several relays, each relay's route a link of its
   * own that learns its own concurrency within its own bounds (lib/upstream/relay-pool.ts). The
   * budget then only shares the total out and learns nothing itself.
   */
  limitFrom?: () => number;
  /** Sockets the upstream's agent holds (the upstream's `connections`): requests asked in another's last round trip stay within them. */
  connections?: number;
  /**
   * The clock a tick's goodput is timed on: by default the process's, net of its own lag
   * (loop-lag.ts ownNow). A tick whose timer ran late because the process could not run has read
   * only what came before the pause (the rest waits in the sockets, read after the tick): on the
   * plain clock that tick's goodput reads low, and the link looks as if more connections did not pay.
   */
  now?: () => number;
}

interface Waiter {
  grant(release: LinkGrant): void;
  fail(reason: unknown): void;
  /** The bytes the request will ask, if said (LinkShare.prefer). */
  range: ByteRange | undefined;
}

/** One transfer's claim on a link: its queue of chunks waiting for a connection, and its own cap. */
export class LinkShare {
  readonly queue: Waiter[] = [];
  active = 0;
  /** When the share joined the link, and whether it asked for a connection since. */
  readonly joinedAt = performance.now();
  asked = false;

  /**
   * @param read Whether a client is reading the transfer now: such shares are served before the
   *   others (a prefetch nobody asked for yet).
   * @param group The blobs of one image (prefetched together): among the read shares of one group
   *   the oldest goes first (LinkBudget.nextReadShare).
   */
  constructor(private readonly link: LinkBudget, readonly cap: number, readonly read: () => boolean = () => false, readonly small = false, readonly group?: string) {}

  /**
   * Resolves with a release function once a connection is free for this share; rejects when
   * `signal` aborts first. `range`: the bytes the request will ask (read when prefer() looks).
   */
  acquire(signal: AbortSignal, range?: ByteRange): Promise<LinkGrant> {
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
        fail: (reason) => {
          signal.removeEventListener('abort', onAbort);
          reject(reason);
        },
        range,
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.asked = true;
      this.link.pumpSoon();
    });
  }

  /** The waiting request whose range holds byte `pos` goes first among this share's (a reader waits for it). */
  prefer(pos: number): void {
    const i = this.queue.findIndex((w) => w.range !== undefined && w.range.start <= pos && pos <= w.range.end);
    if (i > 0) this.queue.unshift(...this.queue.splice(i, 1));
  }

  /** Goodput of this share's connections, for the link's adaptation. */
  record(bytes: number): void {
    this.link.record(bytes);
  }

  overloaded(): void {
    this.link.controller.overloaded();
  }

  /** The transfer is over: waiters left (there should be none) fail, the share leaves the link. */
  close(): void {
    for (const w of this.queue.splice(0)) w.fail(new Error('link share closed'));
    this.link.leave(this);
  }
}

/** How long a share that joined the link and asked nothing yet (opening its partial blob) holds younger prefetches back. */
const OPENING_MS = 100;

export class LinkBudget {
  readonly controller: ConcurrencyController;
  /** Judges every connection of the link against its peers (stall-watch.ts). */
  readonly stalls = new StallWatch();
  private readonly adaptIntervalMs: number;
  private readonly shares: LinkShare[] = [];
  private next = 0;
  private active = 0;
  /** Requests still running whose connection was handed on in their last round trip (LinkGrant.ending). */
  private overlapping = 0;
  private bytes = 0;
  /** Most connections in use at once since the last tick (never below `active`). */
  private peakActive = 0;
  private lastTickAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private pumpQueued = false;
  /** A pump waiting for a share that has not asked yet (oldestWaiting). */
  private opening: NodeJS.Timeout | undefined;
  /** The link delivered a byte (ever: only a fresh link's first answer speeds slow start up). */
  private answered = false;
  /** When the link first had something to carry: its first answer comes a round trip after. */
  private firstBusyAt: number | undefined;
  /** Requests answered and not released: the connections delivering now; their connection-ms since the last tick, and since when `delivering` holds. */
  private delivering = 0;
  private deliveringMs = 0;
  private deliveringSince = 0;
  /** Goodput of the last interval that carried something, bytes/s. */
  private lastRate = 0;
  private readonly onLearned: ((learned: LearnedLink) => void) | undefined;
  private readonly limitFrom: (() => number) | undefined;
  private readonly connections: number;
  private readonly now: () => number;

  constructor(opts: LinkBudgetOptions) {
    this.limitFrom = opts.limitFrom;
    this.connections = opts.connections ?? Infinity;
    this.now = opts.now ?? ownNow;
    this.controller = new ConcurrencyController(opts.minConnections, opts.maxConnections);
    this.adaptIntervalMs = opts.adaptIntervalMs ?? 1000;
    this.onLearned = opts.onLearned;
    if (opts.learned) {
      this.controller.restore(opts.learned);
      this.lastRate = opts.learned.rate > 0 ? opts.learned.rate : 0;
    }
  }

  /** What this link has learned so far. */
  learned(): LearnedLink {
    return { ...this.controller.learned(), rate: Math.round(this.lastRate) };
  }

  /** The total connections allowed now. */
  get limit(): number {
    return this.limitFrom ? Math.max(1, this.limitFrom()) : this.controller.current;
  }

  get activeConnections(): number {
    return this.active;
  }

  /** Requests running in their last round trip, their connection handed on already (LinkGrant.ending). */
  get overlappingConnections(): number {
    return this.overlapping;
  }

  /** Requests waiting for a connection that the total (not their share's cap) holds back. */
  get waiting(): number {
    return this.shares.reduce((n, s) => n + (s.active < s.cap ? s.queue.length : 0), 0);
  }

  /**
   * A new transfer's share, with at most `cap` connections of its own; `read` says whether a client
   * reads it now; `small`, a small blob's: served first, and beyond the limit (SMALL_EXTRA_CONNECTIONS);
   * `group`, the image it is a blob of (served oldest first among the group's shares clients read).
   */
  share(cap = Infinity, read?: () => boolean, small = false, group?: string): LinkShare {
    const s = new LinkShare(this, Math.max(1, cap), read, small, group);
    this.shares.push(s);
    return s;
  }

  record(bytes: number): void {
    this.bytes += bytes;
    if (this.answered || bytes <= 0) return;
    this.answered = true;
    // The link answered: slow start takes now the two doublings it took unjudged before, one here
    // and one at the next tick (nothing measured by either: the first saw only the round trip),
    // 8 -> 32 connections at once instead of 8 -> 16 -> 32 half an interval later (small-docker:
    // 16 connections ~0.6 s late, ~2% of the cap). The round trip after measures the connections
    // that delivered before the leap (those added deliver only a round trip later); the tick after
    // judges the leap by the goodput it brought per connection delivering.
    if (this.controller.slowStart && !this.limitFrom && this.timer && this.peakActive >= this.limit) {
      clearTimeout(this.timer);
      const now = this.now();
      const rtt = now - (this.firstBusyAt ?? this.lastTickAt);
      this.startInterval(now, bytes);
      this.controller.leap(this.active + this.waiting);
      this.scheduleTick(Math.min(this.adaptIntervalMs / 2, Math.max(this.adaptIntervalMs / 10, rtt)));
      this.pump();
    }
  }

  /** A tick's interval starts: what it measures from now on (`bytes` already booked). */
  private startInterval(now: number, bytes = 0): void {
    this.bytes = bytes;
    this.lastTickAt = now;
    this.peakActive = this.active;
    this.deliveringMs = 0;
    this.deliveringSince = now;
  }

  /** One more (or one fewer) request delivering: the connection-ms so far are booked first. */
  private addDelivering(n: number): void {
    const now = this.now();
    this.deliveringMs += this.delivering * (now - this.deliveringSince);
    this.deliveringSince = now;
    this.delivering += n;
  }

  /**
   * @internal A pump once the caller's synchronous work is done: a transfer queues all its
   * requests in one go, and granting the first at once would hand the rest of the free connections
   * to a younger share before the older one's other requests were queued.
   */
  pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** @internal Grants free connections: small blobs first, then round-robin over the shares clients read, then to the oldest share nobody reads. */
  pump(): void {
    for (;;) {
      const share = this.nextShare();
      if (!share) break;
      const waiter = share.queue.shift() as Waiter;
      this.active++;
      this.peakActive = Math.max(this.peakActive, this.active);
      share.active++;
      let released = false;
      let ending = false;
      let delivering = false;
      const free = (): void => {
        this.active--;
        share.active--;
        this.pump();
      };
      const grant: LinkGrant = Object.assign(() => {
        if (released) return;
        released = true;
        if (delivering) this.addDelivering(-1);
        if (!ending) return free();
        this.overlapping--;
      }, {
        ending: (): boolean => {
          if (released || ending) return true;
          if (this.overlapping >= overlapFor(this.limit, this.connections)) return false;
          ending = true;
          this.overlapping++;
          free();
          return true;
        },
        unending: (): void => {
          if (released || !ending) return;
          ending = false;
          this.overlapping--;
          // Counted again, past the limit for a moment if its connection was granted meanwhile: nothing new is granted until it drains.
          this.active++;
          this.peakActive = Math.max(this.peakActive, this.active);
          share.active++;
        },
        answered: (): void => {
          if (released || delivering) return;
          delivering = true;
          this.addDelivering(1);
        },
      });
      waiter.grant(grant);
    }
    this.adaptWhileBusy();
  }

  /** @internal */
  leave(share: LinkShare): void {
    const i = this.shares.indexOf(share);
    if (i < 0) return;
    this.shares.splice(i, 1);
    if (this.next > i) this.next--;
    this.pump();
  }

  private nextShare(): LinkShare | undefined {
    if (this.active >= this.limit + SMALL_EXTRA_CONNECTIONS) return undefined;
    const small = this.nextShareWhere((s) => s.small);
    if (small || this.active >= this.limit) return small;
    return this.nextReadShare() ?? this.oldestWaiting();
  }

  /**
   * Of the shares clients read, round-robin as before (a second client is not stuck behind the
   * first), but the turn of a share of a group (an image's blobs, prefetched together) goes to the
   * group's oldest share that waits: docker reads three layers of an image at once, and round-robin
   * made them finish together at the end, so the client read (and, from a direct upstream, was only
   * then sent: unverified bytes are held) tens of MB after the link went quiet (small-docker direct:
   * 1.8 s of 14.1 s at load 6). In the image's order, each layer finishes in turn and is read while
   * the link carries the next, and docker unpacks each as the next arrives.
   */
  private nextReadShare(): LinkShare | undefined {
    const turn = this.nextShareWhere((s) => s.read());
    if (turn?.group === undefined) return turn;
    const now = performance.now();
    for (const s of this.shares) {
      if (s.group !== turn.group) continue;
      if (s.read() && this.eligible(s)) return s;
      // An older blob of the image still opening its partial blob goes first in a moment (as in oldestWaiting).
      if (this.stillOpening(s, now)) return undefined;
    }
    return turn;
  }

  private eligible(s: LinkShare): boolean {
    return s.queue.length > 0 && s.active < s.cap;
  }

  /**
   * Of the shares nobody reads (prefetches), the oldest: a prefetch starts an image's blobs in the
   * order the client will ask for them, so each finishes in turn (its tail overlapping the next
   * one's start) and the client reads it while the link carries the next, instead of all of them
   * finishing together at the end and being read one by one after the link went quiet.
   */
  private oldestWaiting(): LinkShare | undefined {
    const now = performance.now();
    for (const s of this.shares) {
      if (this.eligible(s)) return s;
      // Blobs started together (a prefetch of an image) open their partial blobs in whatever order
      // the disk answers: the first to ask took every free connection, not the oldest (a client's
      // first layer got none of the first 8). A share that has not asked yet holds the younger
      // ones back for a moment.
      if (this.stillOpening(s, now)) return undefined;
    }
    return undefined;
  }

  /** The share joined the link a moment ago and asked nothing yet: a pump follows once it may have. */
  private stillOpening(s: LinkShare, now: number): boolean {
    if (s.asked || now - s.joinedAt >= OPENING_MS) return false;
    this.pumpAfter(s.joinedAt + OPENING_MS - now);
    return true;
  }

  private pumpAfter(ms: number): void {
    if (this.opening) return;
    this.opening = setTimeout(() => {
      this.opening = undefined;
      this.pump();
    }, Math.max(1, Math.ceil(ms)));
    this.opening.unref();
  }

  private nextShareWhere(eligible: (s: LinkShare) => boolean): LinkShare | undefined {
    const n = this.shares.length;
    for (let k = 0; k < n; k++) {
      const i = (this.next + k) % n;
      const s = this.shares[i] as LinkShare;
      if (this.eligible(s) && eligible(s)) {
        this.next = (i + 1) % n;
        return s;
      }
    }
    return undefined;
  }

  /** The adaptation clock runs only while the link carries or awaits something. */
  private adaptWhileBusy(): void {
    const busy = this.active > 0 || this.shares.some((s) => s.queue.length > 0);
    if (busy && !this.timer) {
      const now = this.now();
      this.firstBusyAt ??= now;
      this.startInterval(now);
      this.scheduleTick();
    } else if (!busy && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * The next tick: after half the interval while slow start doubles (a fresh link reaches 32
   * connections from 8 in 1 s instead of 2: on a 10 s image at 300 ms RTT that second cost ~0.3 s
   * of the link), after the interval once it judges over several ticks.
   */
  private scheduleTick(after?: number): void {
    const ms = after ?? (this.controller.slowStart && !this.limitFrom ? this.adaptIntervalMs / 2 : this.adaptIntervalMs);
    const timer = setTimeout(() => {
      this.tick();
      // tick() stopped the clock (the link went idle) or it goes on.
      if (this.timer === timer) this.scheduleTick();
    }, ms);
    timer.unref();
    this.timer = timer;
  }

  private tick(): void {
    const now = this.now();
    const elapsed = Math.max(1, now - this.lastTickAt);
    const rate = (this.bytes * 1000) / elapsed;
    const delivering = (this.deliveringMs + this.delivering * (now - this.deliveringSince)) / elapsed;
    const saturated = this.peakActive >= this.limit;
    this.startInterval(now);
    if (this.limitFrom) {
      this.pump();
      return;
    }
    const before = this.limit;
    this.controller.tick(rate, this.waiting > 0, saturated, delivering);
    if (rate > 0) this.lastRate = rate;
    if (this.limit !== before || rate > 0) this.onLearned?.(this.learned());
    this.pump();
  }
}
