/**
 * Fetches one byte range into the part file, attempt after attempt, each resuming at the first
 * byte not yet written. An attempt is one request: its Content-Range is checked, its body is
 * written as it arrives (one buffer per connection in memory), and it is aborted when no byte
 * arrives for stallMs of the time this process could run (loop-lag.ts). In "stream" mode the
 * request is the whole blob from an offset, and a 200 (the server cannot do ranges) is accepted by
 * skipping the bytes already held.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ByteRange } from '../oci/range.ts';
import type { StallWatch } from './stall-watch.ts';
import type { RequestHandover } from './link-budget.ts';
import { loopLag, ownNow } from './loop-lag.ts';
import {
  ContentRangeError, PrematureEndError, RangeIgnoredError, RetriesExhaustedError, SizeMismatchError,
  StallError, UpstreamStatusError, isRetryable,
} from './errors.ts';
import { header, type RangeResponse, type RangeSource } from './range-source.ts';
import { parseContentRange } from '../oci/range.ts';
import { backoffMs, parseRetryAfter, type RetryPolicy } from '../retry/policy.ts';

export type FetchMode = 'range' | 'stream';

export interface FetchContext {
  source: RangeSource;
  size: number;
  stallMs: number;
  /** Its attempts are the failed attempts tolerated per range before the transfer fails. */
  policy: RetryPolicy;
  random: () => number;
  checkpointBytes: number;
  /** Writes `buf` at `pos` in the part file and books it (written set, hash, meter). */
  write(pos: number, buf: Uint8Array): Promise<void>;
  /** [start, end) is on disk: journal it (not awaited; failures fail the transfer). */
  checkpoint(start: number, end: number): void;
  attemptStarted(): void;
  /**
   * An attempt is over. `err`: why it failed (a retry); undefined when it ended well, or when we
   * cancelled it: the range's own signal aborted (a tail copy that lost, a fetch phase stopped,
   * the transfer aborted), which says nothing of the link. A cut of the attempt alone (the stall
   * watch, the stallSeconds timer) is a failure.
   */
  attemptEnded(err: unknown | undefined): void;
  /** Cuts a connection silent while its peers deliver, long before stallMs (stall-watch.ts). */
  watch?: StallWatch;
  /** Called when a size disagreement is seen; returns true when it is no longer believable as noise. */
  sizeDisagrees(total: number): boolean;
  /**
   * An attempt of `range` was cut for silence (stalled): before it is asked again from where it
   * stopped, the caller may hand part of the rest to other connections (lowering `range.end`).
   */
  stalled?(range: LiveRange): void;
}

/**
 * A range being fetched. `end` may be lowered while the fetch runs (the transfer hands the rest
 * to another connection); the fetch then stops there. `pos` is the first byte not yet written,
 * `claimed` the end of a write in progress: a split must start past both. `askedAt` and
 * `firstByte`: when the current attempt was sent, and where and when its first byte arrived, so
 * the range's own rate is known (the tail is split by time left, which a slow connection makes long).
 * Times are on the clock net of this process's own lag (loop-lag.ts ownNow).
 */
export interface LiveRange extends ByteRange {
  pos: number;
  claimed: number;
  firstByte?: { pos: number; at: number } | undefined;
  /** When the current attempt was sent. */
  askedAt?: number | undefined;
}

/** Bytes/s the range's current attempt delivers since its first byte, once it has run for `minMs`; else undefined. `now`: ownNow(). */
export function rangeRate(r: LiveRange, now: number, minMs: number): number | undefined {
  const f = r.firstByte;
  if (!f || now - f.at < minMs) return undefined;
  return ((r.pos - f.pos) * 1000) / (now - f.at);
}

export function liveRange(r: ByteRange): LiveRange {
  return { start: r.start, end: r.end, pos: r.start, claimed: r.start };
}

/** Links a controller to a parent signal; dispose() unhooks it. */
export function linkedController(parent: AbortSignal): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  // One listener per connection (ours and undici's) is expected: up to maxConnections of them.
  setMaxListeners(0, controller.signal);
  const onAbort = (): void => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => parent.removeEventListener('abort', onAbort) };
}

/** Bytes to discard at the start of the body; throws when the response is not usable. */
function checkResponse(ctx: FetchContext, res: RangeResponse, pos: number, end: number, mode: FetchMode): number {
  const asked = `${pos}-${end}`;
  if (res.status === 206) {
    const got = header(res.headers, 'content-range');
    const cr = parseContentRange(got);
    if (cr === undefined || cr === 'invalid' || cr.start !== pos || cr.end !== end) throw new ContentRangeError(asked, got);
    if (cr.total !== undefined && cr.total !== ctx.size) {
      if (ctx.sizeDisagrees(cr.total)) throw new SizeMismatchError(ctx.size, cr.total);
      throw new ContentRangeError(asked, got);
    }
    return 0;
  }
  if (res.status === 200) {
    if (mode === 'range') throw new RangeIgnoredError();
    const length = header(res.headers, 'content-length');
    if (length !== undefined && Number(length) !== ctx.size) throw new SizeMismatchError(ctx.size, Number(length));
    return pos;
  }
  throw new UpstreamStatusError(res.status, parseRetryAfter(header(res.headers, 'retry-after')));
}

/** However starved the process, a connection silent for this many times stallSeconds on the plain clock is cut. */
const WALL_SILENCE_FACTOR = 3;

/**
 * Calls `onSilent` once nothing was heard() for `ms` of this process's own time (ownNow): a late
 * turn of the event loop (the process starved of CPU) is not the link's silence. On a process
 * starved for good the own clock crawls (~one tick per turn), so the plain clock bounds it:
 * silence of WALL_SILENCE_FACTOR x `ms` there is cut too. Never while `busy()` (a write to our own
 * store): silence counts again from its end.
 * @internal exported for its test
 */
export function silenceTimer(ms: number, busy: () => boolean, onSilent: () => void): { heard(): void; clear(): void } {
  const wallMs = WALL_SILENCE_FACTOR * ms;
  let heardAt = ownNow();
  let heardWall = performance.now();
  let timer: NodeJS.Timeout;
  const check = (): void => {
    const now = ownNow();
    const wall = performance.now();
    if (busy()) {
      heardAt = now;
      heardWall = wall;
    }
    const silent = now - heardAt;
    const wallSilent = wall - heardWall;
    if (silent >= ms || wallSilent >= wallMs) onSilent();
    else timer = setTimeout(check, Math.max(1, Math.min(ms - silent, wallMs - wallSilent)));
  };
  timer = setTimeout(check, ms);
  return {
    heard: () => {
      heardAt = ownNow();
      heardWall = performance.now();
    },
    clear: () => clearTimeout(timer),
  };
}

/**
 * Calls `handover.ending` (until it says yes) once the attempt's last byte is about its own round trip away
 * at its own rate (the time from its request to its response, on this route: a relay's, a
 * cold relay's, the link's; no longer than the route's round trip the source knows, RangeResponse
 * roundTripMs), so the next request, asked now, gets its first byte as this one gets
 * its last (link-budget.ts overlapFor); then the response is told (RangeResponse.ending). Its rate
 * counts from its first read on (the bytes of that read came before it), once it delivered for a
 * round trip and ENDING_MIN_MS: a rate taken high would have the next request deliver beside it,
 * beyond what the link's limit allows.
 */
function endingWatch(cursor: LiveRange, handover: RequestHandover | undefined): { answered(res: RangeResponse): void; read(): void } {
  let answeredAt: number | undefined;
  let response: RangeResponse | undefined;
  let from: { pos: number; at: number } | undefined;
  let said = handover === undefined;
  return {
    answered: (res) => {
      answeredAt = ownNow();
      response = res;
      handover?.answered();
    },
    read: () => {
      if (said || answeredAt === undefined || cursor.askedAt === undefined) return;
      const now = ownNow();
      if (!from) {
        from = { pos: cursor.pos, at: now };
        return;
      }
      const own = answeredAt - cursor.askedAt;
      const route = response?.roundTripMs;
      const rttMs = route === undefined ? own : Math.min(own, route);
      const ms = now - from.at;
      if (ms < Math.max(ENDING_MIN_MS, rttMs)) return;
      const rate = ((cursor.pos - from.pos) * 1000) / ms;
      if (cursor.end + 1 - cursor.pos > (rate * rttMs) / 1000) return;
      said = handover?.ending() ?? true;
      if (said) response?.ending?.();
    },
  };
}

/** Least time a request delivers before its rate says when it ends (endingWatch). */
const ENDING_MIN_MS = 200;

async function attempt(ctx: FetchContext, cursor: LiveRange, asked: FetchMode, signal: AbortSignal, patience = 1, handover?: RequestHandover): Promise<void> {
  // A stream the transfer split (its end lowered) is a range from then on.
  const mode: FetchMode = asked === 'stream' && cursor.end < ctx.size - 1 ? 'range' : asked;
  const { controller, dispose } = linkedController(signal);
  // Time spent waiting on our own store (a write) is not the link's silence: the timer waits it out.
  let storing = false;
  // What this request asks for; cursor.end may shrink below it while the body arrives.
  const end = cursor.end;
  cursor.claimed = cursor.pos;
  cursor.firstByte = undefined;
  let saved = cursor.pos;
  let failure: unknown;
  let cut = false;
  const watched = ctx.watch?.start((reason) => controller.abort(reason), patience);
  ctx.attemptStarted();
  // Held from here to the finally, nothing that may throw in between (a hold never released keeps
  // the lag ticks running for the process's life).
  const releaseLag = loopLag.hold();
  const stall = silenceTimer(ctx.stallMs, () => storing, () => controller.abort(new StallError(ctx.stallMs / 1000)));
  cursor.askedAt = ownNow();
  const ends = endingWatch(cursor, handover);
  try {
    const res = mode === 'range'
      ? await ctx.source.fetchRange(cursor.pos, end, controller.signal)
      : await ctx.source.fetchAll(controller.signal, cursor.pos);
    stall.heard();
    ends.answered(res);
    watched?.gotHeaders();
    let skip = checkResponse(ctx, res, cursor.pos, end, mode);
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      stall.heard();
      watched?.gotBytes();
      cursor.firstByte ??= { pos: cursor.pos, at: ownNow() };
      let buf = chunk;
      if (skip > 0) {
        const drop = Math.min(skip, buf.length);
        skip -= drop;
        buf = buf.subarray(drop);
        if (buf.length === 0) continue;
      }
      if (cursor.pos + buf.length > end + 1) {
        if (mode === 'stream') throw new SizeMismatchError(ctx.size, `more than ${ctx.size}`);
        throw new ContentRangeError(`${cursor.pos}-${end}`, 'a longer body');
      }
      // Split: the bytes past the new end belong to another connection now.
      if (cursor.pos + buf.length > cursor.end + 1) buf = buf.subarray(0, Math.max(0, cursor.end + 1 - cursor.pos));
      cursor.claimed = cursor.pos + buf.length;
      storing = true;
      const stored = watched?.storing();
      try {
        await ctx.write(cursor.pos, buf);
      } finally {
        storing = false;
        stored?.();
        stall.heard();
      }
      cursor.pos += buf.length;
      ends.read();
      if (cursor.pos - saved >= ctx.checkpointBytes) {
        ctx.checkpoint(saved, cursor.pos);
        saved = cursor.pos;
      }
      if (cursor.pos > cursor.end) {
        cut = cursor.end < end;
        break;
      }
    }
    if (cursor.pos <= cursor.end) throw new PrematureEndError(cursor.pos, cursor.end);
  } catch (e) {
    // An abort shows up as a generic AbortError from the body: report why it was aborted.
    failure = controller.signal.aborted ? controller.signal.reason : e;
    throw failure;
  } finally {
    stall.clear();
    releaseLag();
    watched?.end();
    dispose();
    // A failed or cut-short request must not go back to the pool with a body still coming.
    if (failure !== undefined || cut) controller.abort();
    ctx.checkpoint(saved, cursor.pos);
    ctx.attemptEnded(signal.aborted ? undefined : failure);
  }
}

/**
 * Fetches [range.pos, range.end] until every byte is written, the signal aborts, or attempts run
 * out. `handover`: told (until it says yes) when the range is about a round trip from its end
 * (endingWatch), and told again if it goes on after a failure there (unending).
 */
export async function fetchRange(ctx: FetchContext, range: LiveRange, mode: FetchMode, signal: AbortSignal, handover?: RequestHandover): Promise<void> {
  const cursor = range;
  let failures = 0;
  let failuresInARow = 0;
  // Each cut of this range by the stall watch doubles the silence its next attempt is allowed.
  let patience = 1;
  while (cursor.pos <= cursor.end) {
    signal.throwIfAborted();
    const before = cursor.pos;
    try {
      await attempt(ctx, cursor, mode, signal, patience, handover);
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      if (e instanceof StallError && e.byWatch) patience = Math.min(patience * 2, 16);
      if (e instanceof StallError) ctx.stalled?.(cursor);
      if (!isRetryable(e) || (mode === 'range' && e instanceof RangeIgnoredError)) throw e;
      if (++failures > ctx.policy.attempts) throw new RetriesExhaustedError(failures, e);
      // Handed on in what was to be its last round trip: its retry holds a connection of the link again.
      handover?.unending();
      failuresInARow = cursor.pos > before ? 0 : failuresInARow + 1;
      const retryAfter = e instanceof UpstreamStatusError ? e.retryAfterMs : undefined;
      await sleep(backoffMs(failuresInARow, ctx.policy, ctx.random, retryAfter), undefined, { signal }).catch(() => {
        throw signal.reason;
      });
    }
  }
}
