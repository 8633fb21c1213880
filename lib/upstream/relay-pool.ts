/**
 * The relays of one upstream and what the mirror knows of each: state, goodput, bytes. Each relay's
 * route is a link of its own, with its own cap: each learns its own concurrency (concurrency.ts,
 * on its own goodput), and the upstream's total is their sum (capacity(), which the engine's link
 * budget takes as its limit). It decides which relay the next request goes to (among the relays
 * with a free connection of their own, the one expected to end the range first: a fast relay fills
 * up to what it carries, the rest spills to slower ones, and the last ranges of a blob go to the
 * fast ones) and when a relay is drained:
 *
 *   healthy --(refused, corrupt piece, dark, silent for silentMaxMs, or FAILURES_TO_DRAIN failures in a row)--> down
 *   down --(backoff elapsed: 2 s (30 s after a refusal or corrupt pieces), doubling to 60 s)--> probing (GET /v2/)
 *   probing --(answered)--> healthy;  probing --(fails or silent for darkMs)--> down (longer backoff)
 *
 * "Dark": a relay with requests open that delivered no byte for a while (a few of its round
 * trips, at most darkMs) while another relay did, and that does not answer its /v2/ within that
 * while either. A relay that answers is alive: it is filling the blob from its own registry (a
 * cold relay sends a range only once its own transfer reached it) or its link is slow, and it
 * keeps its requests; it is asked again after as long a silence, up to silentMaxMs of silence in
 * all: then it is drained although it answers (its ranges stall). A dark relay's open requests
 * are cut (their bodies fail with a retryable error, so the engine resumes the range at once, on
 * another relay). A relay that is the only one left is never drained: with every relay failing
 * the engine's own retries decide.
 *
 * Silences (dark, quiet, silentMaxMs, the time a /v2/ question is given) and rates are counted on
 * the clock net of this process's own lag (loop-lag.ts ownNow): while the process could not run
 * (starved of CPU), the relays' bytes and answers waited in the sockets unread, and that is not the
 * relay's silence. Backoffs and round trips are on the plain clock: a backoff is a schedule of
 * real time, and a round trip timed net of lag comes out short when the headers came while the
 * process was starved (the least one seen would stay short).
 */
import { ConcurrencyController } from '../transfer/concurrency.ts';
import { ownNow } from '../transfer/loop-lag.ts';
import { silenceTimer } from '../transfer/range-fetcher.ts';
import { RateMeter } from '../transfer/rate-meter.ts';
import type { UpstreamClient } from './client.ts';
import { UpstreamAuthError } from './errors.ts';

export type RelayState = 'healthy' | 'probing' | 'down';

export const FAILURES_TO_DRAIN = 3;
const BACKOFF_MIN_MS = 2000;
const BACKOFF_MAX_MS = 60_000;
/** First backoff of a relay that refused its token or served corrupt pieces. */
const LONG_BACKOFF_MS = 30_000;

/** How a failure counts: drain now, drain now for long, or drain after a few in a row. */
export type Drain = 'now' | 'long' | 'count';
/** Requests shorter than this say little about a relay's rate. */
const MIN_SAMPLE_BYTES = 64 * 1024;
/** Weight of a new sample in the per-connection rate. */
const EWMA = 0.3;
/** A relay weighs at least this share of the best one, so a slow one is measured again now and then. */
const MIN_WEIGHT_SHARE = 0.1;
/** How often each relay's concurrency is reconsidered. */
const ADAPT_INTERVAL_MS = 1000;
/** A relay silent this many of its round trips (at least QUIET_MIN_MS, at most darkMs) is asked whether it is alive. */
const QUIET_RTT_FACTOR = 4;
const QUIET_MIN_MS = 1000;
/** A relay silent this many darkMs is drained even though its /v2/ answers (default silentMaxMs). */
const SILENT_MAX_DARK_FACTOR = 4;

export interface RelayPoolOptions {
  /**
   * No byte for this long on all of a relay's requests (less once its round trip is known: a few
   * of them), while another relay delivers: the relay is asked its /v2/, and drained unless it
   * answers within as long.
   */
  darkMs?: number;
  /**
   * No byte for this long on all of a relay's requests while another relay delivers: drained even
   * though its /v2/ answers (it is alive, but its ranges stall: its own registry hangs, or its
   * transfer does). Default 4 darkMs (12 s): longer than a relay filling a cold blob should stay silent.
   */
  silentMaxMs?: number;
  random?: () => number;
  /** The clock silences and rates are counted on (by default the process's, net of its own lag: ownNow). */
  now?: () => number;
  /** The clock of backoffs and round trips (by default the plain one; an injected `now` alone serves as both). */
  wall?: () => number;
  /** Told when a relay changes state (logs). */
  onState?: (relay: RelayMember, state: RelayState, reason: string) => void;
  /** Told when a request on a relay ended (debug logs: where a blob's time goes). */
  onRequest?: (relay: RelayMember, request: RequestOutcome) => void;
  /**
   * Each relay's link: the connections it starts from (doubling while its goodput follows) and
   * the most it may carry; as for an upstream of one link, transfer.minConnections and
   * maxConnections (default 8 and 32).
   */
  connectionsPerRelay?: { min: number; max: number };
}

export interface RelaySnapshot {
  url: string;
  state: RelayState;
  /** Bytes/s delivered over the last few seconds, all connections. */
  goodput: number;
  /** Bytes/s one connection delivers (moving average): the weight of the relay. */
  perConnection: number;
  bytes: number;
  active: number;
  /** Connections this relay may carry now (learned on its own goodput). */
  connections: number;
  failures: number;
  drained: number;
  lastError?: string;
}

/** How one request on a relay went. */
export interface RequestOutcome {
  /** The blob (its digest, short) and the bytes asked (end undefined: to the end of the blob). */
  blob?: string;
  start: number;
  end: number | undefined;
  bytes: number;
  /** From the request to its first byte, if one came, and to its end. */
  firstByteMs: number | undefined;
  ms: number;
  outcome: 'succeeded' | 'failed' | 'released' | 'cut';
}

/** One open request on a relay, for the watchdog and the relay's rate. */
interface OpenRequest {
  cut(err: Error): void;
  sample(now: number): { bytes: number; ms: number };
}

export class RelayMember {
  state: RelayState = 'healthy';
  bytes = 0;
  failures = 0;
  drained = 0;
  perConnection = 0;
  lastError: string | undefined;
  readonly meter = new RateMeter();
  /** Last time a byte arrived (or a request began, while none has). */
  lastProgressAt: number;
  /**
   * Requests cut by the caller before their first byte (the engine's stall watch cuts a silent
   * connection within seconds): when the first of them began, and when the last ended. A request
   * that follows at once does not restart the silence, or a dark relay would never be drained.
   */
  unanswered: { since: number; endedAt: number } | undefined;
  readonly open = new Set<OpenRequest>();
  /** Of the open requests, those handed on in their last round trip (RelayRequest.ending): they hold no connection of the relay's any more. */
  handedOn = 0;
  /** Least time from a request to its response headers: the relay's round trip (and its answer). */
  rttMs: number | undefined;
  /** Last time the relay answered while its requests were silent (it is alive: filling, or slow). */
  aliveAt = -Infinity;
  /** Asked whether it is alive, no answer yet. */
  private asking = false;
  /** This relay's own concurrency: its route is a link of its own. */
  readonly concurrency: ConcurrencyController;
  /** Since the last adaptation: bytes, most requests open at once, and whether a request wanted this relay while it was full. */
  private tickBytes = 0;
  peakOpen = 0;
  wanted = false;
  /** When it began delivering since its last tick without a byte (undefined: none since). */
  private deliveringSince: number | undefined;
  private failuresInARow = 0;
  private downs = 0;
  private downUntil = 0;

  constructor(readonly url: string, readonly client: UpstreamClient, private readonly pool: RelayPool, connections: { min: number; max: number }) {
    this.lastProgressAt = pool.now();
    this.concurrency = new ConcurrencyController(connections.min, connections.max);
  }

  /** Connections this relay may carry now. */
  get limit(): number {
    return this.concurrency.current;
  }

  /** Open requests that hold one of its connections: not those in their last round trip, whose connection went to the next request. */
  get holding(): number {
    return this.open.size - this.handedOn;
  }

  /** A connection of its own is free. */
  hasRoom(): boolean {
    return this.holding < this.limit;
  }

  /**
   * Reconsiders this relay's concurrency on the goodput of the last `ms` up to `now` (only while it
   * carried something, and delivered from the tick's start: a tick that began before the relay's
   * first byte, its round trip, a cold relay filling, reads low, and slow start compared the next
   * against it as if the doubled connections had brought the difference; relays3-steady: every
   * relay went 8 -> 16 -> 32 in its first two ticks where 8 connections fill its link, 96 in all
   * where 24 would do, and each held 256 KiB in the link's queue, lost at a cut).
   */
  adapt(ms: number, now = this.pool.now()): void {
    // A tick without a byte (nothing open, or all of it silent: the next blob's cold relay filling,
    // its round trip): the next delivery starts afresh, and this tick says nothing of the link.
    // Not a tick with nothing holding a connection: requests handed on still deliver.
    if (this.tickBytes === 0) this.deliveringSince = undefined;
    const whole = this.deliveringSince !== undefined && this.deliveringSince <= now - ms;
    if (this.peakOpen > 0 && this.state === 'healthy' && whole) this.concurrency.tick((this.tickBytes * 1000) / Math.max(1, ms), this.wanted, this.peakOpen >= this.limit);
    this.tickBytes = 0;
    this.peakOpen = this.holding;
    this.wanted = false;
  }

  get label(): string {
    return new URL(this.url).host;
  }

  /**
   * Goodput per connection, the relay's weight: the moving average of its finished requests;
   * until one finished, what its open requests deliver since their first byte, once they carried
   * MIN_SAMPLE_BYTES together; else 0 (unknown). A slow relay's first ranges take long to end:
   * unmeasured until then, it would weigh as the best meanwhile, draw ranges faster than it ends
   * them, and soon hold most connections, and with them the last, slowest ranges of a blob.
   */
  rate(now: number): number {
    if (this.perConnection > 0) return this.perConnection;
    let bytes = 0;
    let ms = 0;
    for (const r of this.open) {
      const s = r.sample(now);
      bytes += s.bytes;
      ms += s.ms;
    }
    return bytes >= MIN_SAMPLE_BYTES && ms > 0 ? (bytes * 1000) / ms : 0;
  }

  /** Usable for a new request now. */
  available(_now: number): boolean {
    return this.state === 'healthy';
  }

  /**
   * Down with its backoff over (`now` on the pool's wall clock): the relay's /v2/ is asked (its
   * token, its TLS) before a range goes there again, so no piece waits on a relay that is still dark.
   */
  probeIfDue(now: number): void {
    if (this.state !== 'down' || now < this.downUntil) return;
    this.setState('probing', 'backoff over');
    pingWithin(this.client, Math.max(this.pool.darkMs, 1000)).then(() => {
      if (this.state !== 'probing') return;
      this.failuresInARow = 0;
      this.setState('healthy', 'answered its probe');
    }, (err: unknown) => {
      if (this.state === 'probing') this.failed(err, err instanceof UpstreamAuthError ? 'long' : 'now');
    });
  }

  /**
   * Its requests are silent while other relays deliver: its /v2/ decides, within `ms`. Answered:
   * alive (its requests wait for its own transfer, or its link is slow), left alone for another
   * such silence. Not answered: dark, drained now.
   */
  askAlive(ms: number, silentMs: number): void {
    if (this.asking || this.state !== 'healthy') return;
    this.asking = true;
    pingWithin(this.client, Math.ceil(ms)).then(() => {
      this.aliveAt = this.pool.now();
    }, () => {
      if (this.state === 'healthy' && this.pool.now() - this.lastProgressAt >= silentMs) {
        this.failed(new Error(`no byte for ${Math.round(silentMs / 1000)} s while other relays delivered, and no answer to /v2/ within ${(ms / 1000).toFixed(1)} s`), 'now');
      }
    }).finally(() => {
      this.asking = false;
    });
  }

  /**
   * Silent for `maxMs` although it answered its /v2/ during the silence (and no question is
   * pending, whose answer would say whether it is dark instead): its ranges stall.
   */
  stallsWhileAlive(now: number, maxMs: number): boolean {
    return !this.asking && this.aliveAt > this.lastProgressAt && now - this.lastProgressAt >= maxMs;
  }

  /** A request (of bytes start..end, when said) begins: returns what it must report to. */
  begin(onCut: (err: Error) => void, range?: Pick<RequestOutcome, 'blob' | 'start' | 'end'>): RelayRequest {
    return new RelayRequest(this, this.pool, onCut, range);
  }

  received(bytes: number): void {
    this.bytes += bytes;
    this.tickBytes += bytes;
    this.meter.add(bytes);
    this.lastProgressAt = this.pool.now();
    this.deliveringSince ??= this.lastProgressAt;
    this.unanswered = undefined;
  }

  /** A request ended well: `bytes` in `ms`. */
  succeeded(bytes: number, ms: number): void {
    this.failuresInARow = 0;
    if (bytes >= MIN_SAMPLE_BYTES && ms > 0) {
      const rate = (bytes * 1000) / ms;
      this.perConnection = this.perConnection === 0 ? rate : this.perConnection * (1 - EWMA) + rate * EWMA;
    }
    if (this.state !== 'healthy') this.setState('healthy', 'delivered again');
    this.downs = 0;
  }

  /**
   * A request failed. `drain`: 'now' drains at once (unreachable, dark); 'long' too, with a long
   * first backoff (a refused token does not fix itself; bad pieces show only when verified, long
   * after they were served); 'count' after FAILURES_TO_DRAIN in a row.
   */
  failed(err: unknown, drain: Drain = 'count'): void {
    this.failures++;
    this.failuresInARow++;
    this.lastError = err instanceof Error ? err.message : String(err);
    if (this.state === 'down') return;
    if (drain !== 'count' || this.state === 'probing' || this.failuresInARow >= FAILURES_TO_DRAIN) this.drain(this.lastError, drain === 'long' ? LONG_BACKOFF_MS : BACKOFF_MIN_MS);
  }

  private drain(reason: string, backoffMs: number): void {
    if (!this.pool.othersUsable(this)) {
      // The last relay left is used whatever it does: the engine's retries decide.
      if (this.state === 'probing') this.setState('healthy', 'the only relay left');
      return;
    }
    this.drained++;
    this.downs++;
    this.downUntil = this.pool.wall() + Math.min(BACKOFF_MAX_MS, backoffMs * 2 ** (this.downs - 1));
    this.setState('down', reason);
    this.cutOpen(reason);
  }

  /** Ends the open requests: their bodies fail, and the engine resumes them elsewhere. */
  cutOpen(reason: string): void {
    for (const r of [...this.open]) r.cut(new Error(reason));
  }

  private setState(state: RelayState, reason: string): void {
    this.state = state;
    this.pool.opts.onState?.(this, state, reason);
  }

  snapshot(): RelaySnapshot {
    return {
      url: this.url,
      state: this.state,
      goodput: Math.round(this.meter.rate()),
      perConnection: Math.round(this.perConnection),
      bytes: this.bytes,
      active: this.open.size,
      connections: this.limit,
      failures: this.failures,
      drained: this.drained,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }
}

/** One request's bookkeeping on its relay. */
export class RelayRequest implements OpenRequest {
  private firstByteAt: number;
  private readonly beganAt: number;
  /** When it began on the wall clock (its round trip). */
  private readonly beganWall: number;
  private received = 0;
  private ended = false;
  private handedOn = false;

  constructor(readonly member: RelayMember, private readonly pool: RelayPool, private readonly onCut: (err: Error) => void, private readonly range?: Pick<RequestOutcome, 'blob' | 'start' | 'end'>) {
    this.firstByteAt = pool.now();
    this.beganAt = this.firstByteAt;
    this.beganWall = pool.wall();
    const silent = member.unanswered && this.beganAt - member.unanswered.endedAt < pool.darkMs ? member.unanswered.since : undefined;
    if (member.open.size === 0) member.lastProgressAt = silent ?? this.firstByteAt;
    member.open.add(this);
    member.peakOpen = Math.max(member.peakOpen, member.holding);
  }

  /**
   * Its connection was handed on in its last round trip (the engine asked the next request: LinkGrant.ending):
   * it no longer holds one of the relay's connections, so that request finds room on a relay
   * (this one, or another with room) instead of every relay looking full: with all of them full a
   * request lands beyond the limit of the one drawn and marks each as wanting more (relays3-steady:
   * the fast relay carried up to 64 requests on a limit of 32, every relay's limit climbed to 32
   * where 8 connections fill its link, and the ranges crawled into the tail's splits).
   */
  ending(): void {
    if (this.ended || this.handedOn) return;
    this.handedOn = true;
    this.member.handedOn++;
  }

  /** Response headers arrived. */
  answered(): void {
    const ms = this.pool.wall() - this.beganWall;
    this.member.rttMs = this.member.rttMs === undefined ? ms : Math.min(this.member.rttMs, ms);
  }

  bytes(n: number): void {
    // The rate counts from the first byte: a relay still fetching the blob from its upstream is not a slow link.
    if (this.received === 0) this.firstByteAt = this.pool.now();
    this.received += n;
    this.member.received(n);
  }

  /** Bytes so far and the ms since the first of them. */
  sample(now: number): { bytes: number; ms: number } {
    return { bytes: this.received, ms: this.received > 0 ? now - this.firstByteAt : 0 };
  }

  cut(err: Error): void {
    this.end('cut');
    this.onCut(err);
  }

  succeeded(): void {
    if (this.end('succeeded')) this.member.succeeded(this.received, this.pool.now() - this.firstByteAt);
  }

  failed(err: unknown, drain: Drain = 'count'): void {
    if (this.end('failed')) this.member.failed(err, drain);
  }

  /** Ended without a verdict (the caller cancelled, or the range was cut short by a split). */
  released(): void {
    if (!this.end('released')) return;
    if (this.received >= MIN_SAMPLE_BYTES) this.member.succeeded(this.received, this.pool.now() - this.firstByteAt);
    if (this.received > 0) return;
    const prev = this.member.unanswered;
    this.member.unanswered = { since: prev && this.beganAt - prev.endedAt < this.pool.darkMs ? Math.min(prev.since, this.beganAt) : this.beganAt, endedAt: this.pool.now() };
  }

  private end(outcome: RequestOutcome['outcome']): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.member.open.delete(this);
    if (this.handedOn) this.member.handedOn--;
    if (this.range && this.pool.opts.onRequest) {
      const now = this.pool.now();
      this.pool.opts.onRequest(this.member, {
        ...this.range, bytes: this.received, outcome, ms: Math.round(now - this.beganAt),
        firstByteMs: this.received > 0 ? Math.round(this.firstByteAt - this.beganAt) : undefined,
      });
    }
    return true;
  }
}

export class RelayPool {
  readonly members: RelayMember[];
  readonly darkMs: number;
  readonly silentMaxMs: number;
  private readonly random: () => number;
  readonly now: () => number;
  readonly wall: () => number;
  private readonly watchdog: NodeJS.Timeout;
  private readonly adapter: NodeJS.Timeout;
  private lastAdaptAt: number;

  constructor(readonly upstream: string, relays: ReadonlyArray<{ url: string; client: UpstreamClient }>, readonly opts: RelayPoolOptions = {}) {
    this.now = opts.now ?? ownNow;
    this.wall = opts.wall ?? (opts.now ? opts.now : () => performance.now());
    this.random = opts.random ?? Math.random;
    this.darkMs = opts.darkMs ?? 3000;
    this.silentMaxMs = opts.silentMaxMs ?? SILENT_MAX_DARK_FACTOR * this.darkMs;
    const connections = opts.connectionsPerRelay ?? { min: 8, max: 32 };
    this.members = relays.map((r) => new RelayMember(r.url, r.client, this, connections));
    this.watchdog = setInterval(() => this.checkDark(), Math.max(100, Math.floor(this.darkMs / 4)));
    this.watchdog.unref();
    this.lastAdaptAt = this.now();
    this.adapter = setInterval(() => this.adapt(), ADAPT_INTERVAL_MS);
    this.adapter.unref();
  }

  /**
   * Connections the upstream may carry now: the sum of its usable relays' own, plus one, so a
   * request finds every relay full now and then and each learns whether it could carry more.
   */
  capacity(): number {
    const now = this.now();
    return this.members.reduce((n, m) => n + (m.available(now) ? m.limit : 0), 0) + 1;
  }

  /** Each relay's concurrency follows its own goodput. */
  adapt(): void {
    const now = this.now();
    if (now - this.lastAdaptAt < ADAPT_INTERVAL_MS / 2) return;
    for (const m of this.members) m.adapt(now - this.lastAdaptAt, now);
    this.lastAdaptAt = now;
  }

  /**
   * A relay for the next request among those with a free connection of their own; `except` those
   * tried already. A request of `bytes` goes to the one expected to end it first (its round trip
   * plus the bytes at its goodput per connection), so the last ranges of a blob do not go to a
   * slow relay while a fast one has room; while every relay is busy, a relay gets a request
   * whenever one of its connections comes free, so each carries what its route carries. Without a
   * size (a stream to the end), at random, weighted by goodput per connection. With none
   * available: the relay whose backoff ends first, unless `availableOnly`.
   */
  pick(except: ReadonlySet<RelayMember> = new Set(), availableOnly = false, bytes?: number): RelayMember | undefined {
    const now = this.now();
    const usable = this.members.filter((m) => !except.has(m) && m.available(now));
    // A relay silent for a while gets no new work while another delivers (the watchdog may drain it soon).
    const responsive = usable.filter((m) => this.responsive(m, now));
    const candidates = responsive.length > 0 ? responsive : usable;
    if (candidates.length === 0) return availableOnly ? undefined : this.fallback(except);
    const choose = (among: RelayMember[]): RelayMember => (bytes === undefined ? this.weighted(among) : this.soonest(among, bytes));
    const chosen = choose(candidates);
    if (chosen.hasRoom()) return chosen;
    // The relay drawn is full: it wanted more connections. The request goes to one with room;
    // with none, every relay wanted more, and the one drawn carries it.
    chosen.wanted = true;
    const roomy = candidates.filter((m) => m.hasRoom());
    if (roomy.length > 0) return choose(roomy);
    for (const m of candidates) m.wanted = true;
    return chosen;
  }

  /** One of `candidates` at random, weighted by goodput per connection. */
  private weighted(candidates: RelayMember[]): RelayMember {
    // An idle unmeasured relay weighs as much as the best measured one, so it gets measured; one
    // being measured (its requests have not shown their rate yet) as little as the slowest may.
    const now = this.now();
    const rates = candidates.map((m) => m.rate(now));
    const best = Math.max(0, ...rates);
    if (best === 0) {
      // Nothing measured yet: a draw at random, but the request goes to one of the relays with room
      // that hold the fewest, so no relay starts with more than its share (a full relay drawn wanted more).
      const drawn = this.anyOf(candidates);
      return drawn.hasRoom() ? this.anyOf(leastOpen(candidates.filter((m) => m.hasRoom()))) : drawn;
    }
    const weights = candidates.map((m, i) => expectedRate(m, rates[i] as number, best));
    let x = this.random() * weights.reduce((a, b) => a + b, 0);
    for (const [i, w] of weights.entries()) {
      x -= w;
      if (x < 0) return candidates[i] as RelayMember;
    }
    return candidates[candidates.length - 1] as RelayMember;
  }

  /**
   * The one of `candidates` expected to end a request of `bytes` first. Unmeasured, a relay is
   * expected to do as well as the best measured one while idle (so it gets measured), as the
   * slowest may while its first requests run; with none measured, one of those holding the fewest.
   */
  private soonest(candidates: RelayMember[], bytes: number): RelayMember {
    const now = this.now();
    const rates = candidates.map((m) => m.rate(now));
    const best = Math.max(0, ...rates);
    if (best === 0) {
      // Nothing measured: one of those with room holding the fewest (a full relay picked would be marked as wanting more).
      const roomy = candidates.filter((m) => m.hasRoom());
      return this.anyOf(leastOpen(roomy.length > 0 ? roomy : candidates));
    }
    const seconds = candidates.map((m, i) => (m.rttMs ?? 0) / 1000 + bytes / expectedRate(m, rates[i] as number, best));
    const least = Math.min(...seconds);
    return this.anyOf(candidates.filter((_, i) => seconds[i] === least));
  }

  private anyOf(members: RelayMember[]): RelayMember {
    return members[Math.floor(this.random() * members.length)] as RelayMember;
  }

  /** Relays in the order to try for one small request (manifests, HEADs): healthy, delivering and fastest first; probing, then down, last. */
  ordered(): RelayMember[] {
    const now = this.now();
    const rank = (m: RelayMember): number => {
      if (!m.available(now)) return m.state === 'down' ? 3 : 2;
      return m.state === 'healthy' && this.responsive(m, now) ? 0 : 1;
    };
    return [...this.members].sort((a, b) => rank(a) - rank(b) || b.rate(now) - a.rate(now));
  }

  /** Not down, and delivering or idle. */
  private responsive(m: RelayMember, now: number): boolean {
    return m.state !== 'down' && (m.open.size === 0 || now - m.lastProgressAt < this.darkMs / 2);
  }

  /** True when another relay than `m` can take requests (so `m` may be drained). */
  othersUsable(m: RelayMember): boolean {
    const now = this.now();
    return this.members.some((o) => o !== m && o.state !== 'down' && (o.available(now) || o.open.size > 0));
  }

  snapshot(): RelaySnapshot[] {
    return this.members.map((m) => m.snapshot());
  }

  close(): void {
    clearInterval(this.watchdog);
    clearInterval(this.adapter);
  }

  /** Every relay is down or probing: one of them anyway, so requests still go somewhere. */
  private fallback(except: ReadonlySet<RelayMember>): RelayMember | undefined {
    const rest = this.members.filter((m) => !except.has(m));
    return rest.find((m) => m.state !== 'down') ?? rest[0];
  }

  /** How long a relay may be silent before it is asked whether it is alive: a few of its round trips, at most darkMs. */
  quietMs(m: RelayMember): number {
    return m.rttMs === undefined ? this.darkMs : Math.min(this.darkMs, Math.max(QUIET_MIN_MS, Math.ceil(QUIET_RTT_FACTOR * m.rttMs)));
  }

  /** @internal The watchdog's round: probes due, silent relays asked whether they are alive. */
  checkDark(): void {
    const now = this.now();
    const wall = this.wall();
    for (const m of this.members) {
      m.probeIfDue(wall);
      if (m.open.size === 0) continue;
      const quiet = this.quietMs(m);
      const silent = now - m.lastProgressAt;
      // Dark only while another relay could take the work: a link that stalls for all is not this relay's fault.
      if (now - Math.max(m.lastProgressAt, m.aliveAt) < quiet || !this.members.some((o) => o !== m && this.responsive(o, now))) continue;
      if (m.state === 'down') m.cutOpen(`no byte for ${Math.round(silent / 1000)} s while other relays delivered`);
      else if (m.stallsWhileAlive(now, this.silentMaxMs)) m.failed(new Error(`no byte for ${Math.round(silent / 1000)} s while other relays delivered, though it answers its /v2/ (its ranges stall)`), 'now');
      else m.askAlive(quiet, silent);
    }
  }
}

/**
 * The relay's /v2/ answered within `ms` of this process's own time (range-fetcher.ts
 * silenceTimer: an answer that waited in its socket while the process could not run is in time;
 * a timer runs before the sockets are read when the process runs again). Rejects at `ms` whatever
 * the client does: a dark relay's ping may wait in its client's queue behind the relay's own stuck
 * requests (one connection pool per relay), and a question that never ends would keep the relay
 * from ever being drained (relays3: 15 s with 31 ranges on a dark relay).
 */
function pingWithin(client: UpstreamClient, ms: number): Promise<void> {
  const asked = new AbortController();
  let timer: { clear(): void } | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = silenceTimer(ms, () => false, () => {
      const reason = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
      asked.abort(reason);
      reject(reason);
    });
  });
  const answer = client.ping(asked.signal);
  const stop = (): void => timer?.clear();
  answer.then(stop, stop);
  return Promise.race([answer, late]);
}

/**
 * What a relay is expected to deliver per connection, `rate` measured and `best` the best measured:
 * at least a share of the best; unmeasured, as much as the best while idle (so it gets measured), as
 * little as the slowest may while its first requests run.
 */
function expectedRate(m: RelayMember, rate: number, best: number): number {
  if (rate > 0) return Math.max(rate, best * MIN_WEIGHT_SHARE);
  return m.open.size === 0 ? best : best * MIN_WEIGHT_SHARE;
}

/** The members with the fewest open requests. */
function leastOpen(members: RelayMember[]): RelayMember[] {
  const fewest = Math.min(...members.map((m) => m.holding));
  return members.filter((m) => m.holding === fewest);
}
