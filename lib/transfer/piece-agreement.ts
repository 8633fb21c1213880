/**
 * Repair without piece digests (a direct upstream): the blob's digest did not match, so some
 * piece on disk is wrong, but nothing says which. Each piece is fetched again and compared with
 * the copy held; two copies that agree win (a flipped byte on the link is random, the right bytes
 * are not). A new copy goes to a scratch file and replaces the held one only once it has won, under
 * a lock shared with the whole-blob check, so that check always reads a consistent part: when it
 * matches, the pieces not yet compared are not fetched, and no piece starts while that check
 * runs. Pieces are compared in order, at most an eighth of the blob's pieces at once: a flip
 * somewhere in the blob costs the pieces up to it plus the ones in flight when its copy came, not
 * every piece fetched at once. Where the bytes show where the damage is (a gzip layer: `locate`),
 * pieces are compared from there back: the few it narrows the damage to at once (between a good
 * tar header and a bad one, or the places its CRC names), else one at first: a flip costs a piece
 * or two and a round trip. A piece that changed has the bytes looked at again at once, while a
 * third copy confirms it: the next flip of the layer is sought meanwhile.
 *
 * The result: 'repaired' when some piece changed, 'same' when every piece was fetched again and
 * agreed with what is held, so the upstream serves the same wrong bytes again and again.
 */
import type { PartialBlob } from '../storage/partial-blobs.ts';
import { withSlab } from '../storage/buffer-pool.ts';
import type { Algorithm } from '../oci/digest.ts';
import type { ByteRange } from '../oci/range.ts';
import { linkedController } from './range-fetcher.ts';
import { bareHex, hashRange } from './piece-check.ts';
import { newHash } from '../oci/digest.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { RETRY_POLICIES, backoffMs } from '../retry/policy.ts';
import { isRetryable } from './errors.ts';

export interface AgreementRepair {
  /** The partial blob (its scratch area holds the new copies). */
  part: PartialBlob;
  size: number;
  pieces: readonly ByteRange[];
  algorithm: Algorithm;
  /** The blob digest. */
  digest: string;
  /** performance.now() after which a piece still disagreeing fails the repair (its first copy is always fetched). */
  deadline: number;
  /**
   * Pieces compared at once, at most (each holds a read buffer, and a connection while its copy
   * comes): a blob has up to thousands of pieces, and the link runs only so many requests anyway.
   */
  concurrency: number;
  signal: AbortSignal;
  /** Fetches `piece` over the link, handing each buffer to `write` in order; a retryable failure is fetched again here. */
  fetchCopy(piece: ByteRange, write: (pos: number, buf: Uint8Array) => Promise<void>, signal: AbortSignal): Promise<void>;
  /**
   * Where the bytes as held show damage, if anywhere (gzip-damage.ts): pieces are compared from
   * there, the likeliest at once, and it is asked again as soon as a piece changed. Without it, or
   * once it says nothing, in order.
   */
  locate?(signal: AbortSignal): Promise<DamageHint | undefined>;
  /** Called when a piece ended up other than it was held (two copies agreed on other bytes). */
  replaced?(piece: ByteRange): void;
}

/** Where the damage likely is (gzip-damage.ts:Damage). */
export interface DamageHint {
  /** The damage is before this offset (exclusive)... */
  before?: number;
  /** ...and at or after this one. */
  after?: number;
  /** Or in one of these ranges, most likely (any of them), before the rest. */
  suspects?: readonly ByteRange[];
}

export class RepairDeadlineError extends Error {
  constructor(readonly piece: ByteRange) {
    super(`piece ${piece.start}-${piece.end} never arrived the same twice before the repair deadline`);
    this.name = 'RepairDeadlineError';
  }
}

/**
 * Pieces in flight when the differing one's copy arrives are fetched for nothing: at most
 * 1/IN_FLIGHT_PARTS of the blob's pieces are compared at once, and no fewer than IN_FLIGHT_MIN.
 */
const IN_FLIGHT_PARTS = 8;
const IN_FLIGHT_MIN = 4;
/** Pieces compared at once from where the damage showed, at first (one more for each that agreed): most often the first is the one. */
const LOCATED_WIDTH = 1;
/** Pieces compared at once at first where the damage is narrowed to a few: all of them, up to this many. */
const LIKELIEST_MAX = 4;

/** Indexes of the pieces overlapping [start, end] (inclusive), first to last. */
function overlapping(pieces: readonly ByteRange[], start: number, end: number): number[] {
  const out: number[] = [];
  for (const [i, p] of pieces.entries()) if (p.end >= start && p.start <= end) out.push(i);
  return out;
}

/** The pieces the hint's suspects overlap, in the suspects' order, each once. */
function suspectPieces(pieces: readonly ByteRange[], hint: DamageHint | undefined): number[] {
  return [...new Set((hint?.suspects ?? []).flatMap((r) => overlapping(pieces, r.start, r.end)))];
}

/**
 * The order pieces are compared in: without a hint, first to last; with suspects, the pieces they
 * overlap, then the rest in order; with a place (`before`: the damage is before it), from the
 * piece holding byte before-1 back to the first, then the rest.
 */
export function suspicionOrder(pieces: readonly ByteRange[], hint: DamageHint | undefined): number[] {
  const count = pieces.length;
  const all = Array.from({ length: count }, (_, i) => i);
  const first = suspectPieces(pieces, hint);
  if (first.length > 0) {
    const taken = new Set(first);
    return [...first, ...all.filter((i) => !taken.has(i))];
  }
  const at = hint?.before;
  if (at === undefined || at <= 0) return all;
  let last = pieces.findIndex((p) => p.end >= at - 1);
  if (last < 0) last = count - 1;
  return [...all.slice(0, last + 1).reverse(), ...all.slice(last + 1)];
}

/**
 * How many of suspicionOrder's first pieces are compared at once at first: every piece the hint
 * narrows the damage to (its suspects, or [after, before)) up to LIKELIEST_MAX, fetched in one
 * round trip instead of one after the other; one where only `before` is known.
 */
export function likeliestCount(pieces: readonly ByteRange[], hint: DamageHint | undefined): number {
  const suspects = suspectPieces(pieces, hint);
  if (suspects.length > 0) return Math.min(LIKELIEST_MAX, suspects.length);
  if (hint?.before !== undefined && hint.after !== undefined && hint.after < hint.before) {
    return Math.max(1, Math.min(LIKELIEST_MAX, overlapping(pieces, hint.after, hint.before - 1).length));
  }
  return LOCATED_WIDTH;
}

/** A one-at-a-time lock. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(() => {}, () => {});
    return result;
  }
}

export async function repairByAgreement(r: AgreementRepair): Promise<'repaired' | 'same'> {
  const scratch = await r.part.scratch();
  const lock = new Mutex();
  const phase = linkedController(r.signal);
  const want = bareHex(r.digest);
  let changed = false;
  let matched = false;
  let checking: Promise<void> | undefined;
  let checkAgain = false;

  const wholeMatches = (): Promise<boolean> => lock.run(async () => (await hashRange(r.part, { start: 0, end: r.size - 1 }, r.algorithm)) === want);
  const checkWhole = (): void => {
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = (async () => {
      do {
        checkAgain = false;
        if (await wholeMatches()) {
          matched = true;
          phase.controller.abort(new Error('the blob verified'));
          return;
        }
      } while (checkAgain);
    })().finally(() => {
      checking = undefined;
    });
  };

  /** Copies `piece` from the scratch file into the part, under the lock. */
  const adopt = (piece: ByteRange): Promise<void> => lock.run(() => withSlab(async (buf) => {
    for (let pos = piece.start; pos <= piece.end;) {
      const bytesRead = await scratch.read(pos, buf.subarray(0, Math.min(buf.length, piece.end + 1 - pos)));
      if (bytesRead === 0) throw new Error(`short read of the repair copy at ${pos}`);
      await r.part.write(pos, buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  }));

  // The part always holds the newest copy that differs from it: the held one is in a blob known
  // to be wrong, so a differing copy is the likelier right one, and the whole-blob check may
  // confirm it before a third copy does.
  const held: Array<{ original: string; current: string; seen: Set<string> }> = [];
  /** Told when a piece's bytes in the part changed (a copy that differs was adopted). */
  let partChanged = (): void => {};
  /** Fetches copies of piece i until one agrees with a copy seen before; true when the part's bytes changed. */
  const repairPiece = async (piece: ByteRange, i: number): Promise<boolean> => {
    // The blob may have verified while this piece waited its turn.
    phase.controller.signal.throwIfAborted();
    let state = held[i];
    if (!state) {
      const original = await hashRange(r.part, piece, r.algorithm);
      state = { original, current: original, seen: new Set<string>([original]) };
      held[i] = state;
    }
    const before = state.current;
    for (let failures = 0; ;) {
      // A changed piece may have made the blob whole: no copy is fetched until the check said.
      while (checking) await checking;
      phase.controller.signal.throwIfAborted();
      if (state.seen.size > 1 && performance.now() > r.deadline) throw new RepairDeadlineError(piece);
      const hash = newHash(r.algorithm);
      try {
        await r.fetchCopy(piece, async (pos, buf) => {
          await scratch.write(pos, buf);
          hash.update(buf);
        }, phase.controller.signal);
        failures = 0;
      } catch (err) {
        // The link that flips bytes also resets and garbles headers: a copy cut short is fetched
        // again (until the deadline), as a chunk would be; before, the first one failed the transfer.
        if (phase.controller.signal.aborted || !isRetryable(err)) throw err;
        if (performance.now() > r.deadline) throw new RepairDeadlineError(piece);
        await sleep(backoffMs(++failures, RETRY_POLICIES.transfer), undefined, { signal: phase.controller.signal });
        continue;
      }
      const copy = hash.digest('hex');
      if (copy !== state.current) {
        await adopt(piece);
        state.current = copy;
        checkWhole();
        partChanged();
      }
      if (state.seen.has(copy)) return state.current !== before;
      state.seen.add(copy);
    }
  };

  const wide = Math.max(1, Math.min(r.concurrency, Math.max(IN_FLIGHT_MIN, Math.ceil(r.pieces.length / IN_FLIGHT_PARTS))));
  /** Pieces whose copies agreed: never fetched again. */
  const settled = new Set<number>();
  const running = new Map<number, Promise<void>>();
  let failure: { error: unknown } | undefined;
  /**
   * A piece changed in a round that followed where the damage showed: look again at once, while
   * its confirming copy (a third, when the blob still does not match) is fetched beside the next
   * round: a layer with several flips costs a locate and a round trip per flip, not two round trips.
   */
  let lookAgain = false;
  let locatedRound = false;
  /** Wakes the loop waiting in settle() (a piece changed while others still run). */
  let poke = (): void => {};
  partChanged = () => {
    if (!locatedRound) return;
    lookAgain = true;
    poke();
  };
  const stopped = (): boolean => matched || failure !== undefined || lookAgain || phase.controller.signal.aborted;
  /** Until a piece ends, the whole-blob check answers, or a piece changed. */
  const settle = (): Promise<unknown> => Promise.race([
    ...running.values(),
    ...(checking ? [checking] : []),
    new Promise<void>((resolve) => {
      poke = resolve;
    }),
  ]);
  try {
    for (let located = r.locate !== undefined; ;) {
      while (checking) await checking;
      if (matched || failure || phase.controller.signal.aborted) break;
      // Where the bytes as held show damage (under the lock: no piece changes meanwhile). Once
      // they show none, the rest is compared in order.
      // A hint only: a locate that fails (a store read) leaves the pieces to be compared in order.
      const hint = located ? await lock.run(() => r.locate!(phase.controller.signal)).catch(() => undefined) : undefined;
      located = hint !== undefined;
      locatedRound = located;
      lookAgain = false;
      if (matched || failure || phase.controller.signal.aborted) break;
      // Around a damage the piece is most likely one of the first few: those at once, then one
      // more for each that agreed (what is in flight when the differing copy comes is fetched for
      // nothing). Copies still confirming a piece of an earlier round do not count.
      const carried = running.size;
      // The likeliest pieces go together, and nothing more starts before they all came: when one
      // of them was it, anything started beside them would be fetched for nothing.
      const likeliest = located ? Math.min(wide, likeliestCount(r.pieces, hint)) : 0;
      let width = located ? likeliest : wide;
      let launched = 0;
      for (const i of suspicionOrder(r.pieces, hint)) {
        if (settled.has(i) || running.has(i)) continue;
        if (launched === likeliest) while (running.size > carried && !stopped()) await settle();
        // A changed piece may have made the blob whole: nothing new starts until the check said.
        while ((running.size >= width + carried || checking) && !stopped()) await settle();
        if (stopped()) break;
        launched++;
        running.set(i, repairPiece(r.pieces[i] as ByteRange, i).then((didChange) => {
          settled.add(i);
          if (!didChange) width = Math.min(wide, width + 1);
        }, (e: unknown) => {
          if (!phase.controller.signal.aborted) failure ??= { error: e };
        }).finally(() => {
          running.delete(i);
        }));
      }
      while (running.size > 0 && !stopped()) await settle();
      while (checking) await checking;
      if (!lookAgain) break;
    }
    await Promise.allSettled(running.values());
    while (checking) await checking;
    for (const [i, state] of held.entries()) {
      if (state && state.current !== state.original) {
        changed = true;
        r.replaced?.(r.pieces[i] as ByteRange);
      }
    }
    if (matched) return 'repaired';
    r.signal.throwIfAborted();
    if (failure) throw failure.error;
    return changed ? 'repaired' : 'same';
  } finally {
    // Whatever ended the repair (a piece's error, the check's), no copy goes on fetching after it.
    phase.controller.abort(new Error('the repair ended'));
    await Promise.allSettled([...running.values(), ...(checking ? [checking] : [])]);
    phase.dispose();
    await scratch.close().catch(() => {});
  }
}
