/**
 * The tail of a transfer: nothing of it waits for a connection, yet the link has some free. What
 * to do with them, judged by the time each running range still needs at its own rate (bytes left
 * alone say nothing when one connection is four times slower than the next, a relay on a slow
 * route, or stalled):
 *
 * - split the range that needs the longest where both parts end together: its own connection
 *   keeps what it does in the time a new connection, at the transfer's rate per connection, needs
 *   for the rest after a round trip. While the transfer runs on half the link's connections or
 *   more, only a straggler (twice the others' time on average): ranges that end together gain
 *   nothing where the link's total is what binds; but a range a new connection would end in less
 *   than half its time is a straggler whatever its peers do (the ranges of a slow relay, all
 *   ending late together, while a fast relay has room). On fewer, the link's budget found more
 *   connections worth having than run: ranges that would end together are split too (each part
 *   ends sooner where connections are capped one by one);
 * - a straggler too small to split (the part handed off would not outweigh what the link holds in
 *   flight for it) that a new connection would still end in less than half its time is copied:
 *   the rest of it is asked again on a new connection, the first copy to end wins and the other
 *   is cancelled (the transfer does that).
 *
 * Splits and copies cost link bytes (what a cut request held in flight, what both copies fetch):
 * together at most the transfer's loss budget. None while this process could not run for a tenth
 * of the last second or more (loop-lag.ts share), or that is not known yet (the first second of a
 * fetch after a pause: a fresh mirror's first blob on a loaded machine was split 0.3 s in, 1.076x
 * that blob, every connection it read slowly): its connections are slow because it reads them
 * slowly, a new connection would be no faster, and what a cut request held is not a round trip's
 * worth but all that waited unread in its socket (load 9-14: splits and copies at lag shares of
 * 0.2-0.7 cost the prefetch e2e 1.10-1.19x the image; idle, the share is 0.00-0.04).
 *
 * Pure: ranges and figures in, steps out.
 */
import { liveRange, rangeRate, type LiveRange } from './range-fetcher.ts';

/** The tail is split down to pieces of this size, so its last percent never waits on one connection. */
export const TAIL_MIN_PIECE_BYTES = 64 * 1024;

/** A running range is split or copied only if it would take longer than this alone. */
export const TAIL_SPLIT_MIN_SECONDS = 0.5;

/**
 * A split cuts the running request at the split point, and what the link held in flight for it
 * past there (about its rate times the round trip) is lost: the part handed off must be at least
 * this many times that, and all splits of a transfer together may lose at most its loss budget
 * (TailFigures.lossBudget).
 */
export const TAIL_SPLIT_IN_FLIGHT_FACTOR = 4;

/** A range's own rate counts once its attempt delivered for this many round trips (and this long at least). */
const OWN_RATE_RTTS = 4;
const OWN_RATE_MIN_MS = 300;

/** At this share of the last second lost to the process's own lag (loop-lag.ts) or more, the tail does nothing. */
export const TAIL_MAX_LAG_SHARE = 0.1;

/** A request with no byte after this many round trips (1 s at least) is taken as needing as long again. */
const SILENT_RTTS = 4;
const SILENT_MIN_MS = 1000;

/**
 * split: `range` ends before `rest` now, and `rest` goes to a new connection (a later step may
 * split `rest` again before it started). copy: a new connection asks `range` from `from` to its end too.
 */
export type TailStep =
  | { kind: 'split'; range: LiveRange; rest: LiveRange; risk: number }
  | { kind: 'copy'; range: LiveRange; from: number; risk: number };

export interface TailFigures {
  /** Connections of the link free now, and all it may use now. */
  free: number;
  linkLimit: number;
  /** On the ranges' clock (askedAt, firstByte): net of this process's own lag (loop-lag.ts), so a range is not silent while we could not read it. */
  now: number;
  /** The link's round trip (least time to response headers). */
  rttMs: number;
  /** Bytes/s a new connection is expected to deliver (what the transfer's requests did). */
  perConnection: number;
  /** Ranges that have a copy running, or are one: neither split nor copied again. */
  paired: (r: LiveRange) => boolean;
  /** Bytes the splits and copies may still cost (in flight past split points, fetched by both copies), for the whole transfer. */
  lossBudget: number;
  /** Share of the last second this process could not run (loop-lag.ts share); undefined: not known yet. */
  lagShare: number | undefined;
}

interface Item {
  range: LiveRange;
  from: number;
  /** Its end once the steps so far are applied. */
  end: number;
  left: number;
  /** Bytes/s expected of it. */
  rate: number;
  /** Seconds it still needs. */
  time: number;
  fixed: boolean;
}

/** What each free connection should take over, in order. */
export function planTail(running: Iterable<LiveRange>, f: TailFigures): TailStep[] {
  const rtt = f.rttMs / 1000;
  if (!(f.free > 0) || f.lagShare === undefined || !(f.lagShare < TAIL_MAX_LAG_SHARE)) return [];
  const a = f.perConnection;
  if (!(a > 0)) return [];
  const items: Item[] = [];
  for (const r of running) {
    const from = Math.max(r.pos, r.claimed);
    const left = r.end + 1 - from;
    if (left <= 0) continue;
    items.push({ range: r, from, end: r.end, left, ...expected(r, left, a, f), fixed: f.paired(r) });
  }
  const steps: TailStep[] = [];
  let budget = f.lossBudget;
  while (steps.length < f.free) {
    // A range that has a copy already is left to it: the next longest may still gain from a connection.
    const best = items.reduce<Item | undefined>((b, i) => (!i.fixed && (!b || i.time > b.time) ? i : b), undefined);
    if (!best || best.time < TAIL_SPLIT_MIN_SECONDS) break;
    // A silent range (no end in sight) says nothing of how long the others take.
    const others = items.filter((i) => i !== best && Number.isFinite(i.time));
    // A new connection would end it in less than half its time (a slow relay's range while a fast one has room): a straggler whatever its peers do.
    const behindNew = best.time >= 2 * (rtt + best.left / a);
    if (!behindNew && items.length >= f.linkLimit / 2 && others.length > 0 && best.time < (2 * others.reduce((n, i) => n + i.time, 0)) / others.length) break;
    const r = best.rate;
    const keep = Math.ceil(((rtt * a + best.left) * r) / (a + r));
    const handOff = best.left - keep;
    // A connection that delivers (next to) nothing keeps no part: its range is copied whole instead.
    const risk = r * rtt;
    if (handOff >= Math.max(TAIL_MIN_PIECE_BYTES, TAIL_SPLIT_IN_FLIGHT_FACTOR * risk) && keep >= TAIL_MIN_PIECE_BYTES && risk <= budget) {
      const rest = liveRange({ start: best.from + keep, end: best.end });
      steps.push({ kind: 'split', range: best.range, rest, risk });
      budget -= risk;
      best.end = rest.start - 1;
      best.left = keep;
      best.time = keep / r;
      items.push({ range: rest, from: rest.start, end: rest.end, left: handOff, rate: a, time: rtt + handOff / a, fixed: false });
      continue;
    }
    const copyTime = rtt + best.left / a;
    // Both copies run until the first ends: the bytes the original fetches meanwhile are fetched
    // twice (all of them, should a silent one wake up).
    const copyRisk = r > 0 ? Math.min(best.left, r * (copyTime + rtt)) : best.left;
    if (best.time < 2 * copyTime || copyRisk > budget) {
      // Not worth a copy (or beyond the budget): a shorter range with fewer bytes left may be.
      best.fixed = true;
      continue;
    }
    steps.push({ kind: 'copy', range: best.range, from: best.from, risk: copyRisk });
    budget -= copyRisk;
    best.fixed = true;
    best.time = copyTime;
  }
  return steps;
}

/** The rate and time left expected of a running range: its own once measured, else a new connection's (`a`). */
function expected(r: LiveRange, left: number, a: number, f: TailFigures): { rate: number; time: number } {
  const own = rangeRate(r, f.now, Math.max(OWN_RATE_MIN_MS, OWN_RATE_RTTS * f.rttMs));
  // A connection that stopped delivering, or a request with no byte for many round trips: no end in sight.
  const silent = !r.firstByte && r.askedAt !== undefined && f.now - r.askedAt > Math.max(SILENT_MIN_MS, SILENT_RTTS * f.rttMs);
  if (own === 0 || silent) return { rate: 0, time: Infinity };
  if (own !== undefined) return { rate: own, time: left / own };
  return { rate: a, time: f.rttMs / 1000 + left / a };
}
