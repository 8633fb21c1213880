/**
 * The S3 backend's PartialBlobStorage: a pull-through transfer in progress as objects in the
 * bucket, so that another replica can read it as it grows and finish it if this one dies.
 *
 *   partials/<alg>/<hex>/pieces/<start>-<end>-<generation>   bytes start..end (inclusive) of the blob
 *   partials/<alg>/<hex>/held                                  { size, held: [[start, end), ...], through } the ranges recorded
 *
 * S3 has no positional write. The engine writes each of its requests front to back, so writes
 * that continue one another gather in memory into a run. What a replica holds only in memory is
 * bounded, because a takeover after a kill -9 fetches it across the link again: once the runs hold
 * MEMORY_BYTES not yet in the bucket, their new bytes go out as small pieces (and at least every
 * WRITE_OUT_MS while ranges are recorded). A run stays in memory until it makes PIECE_BYTES (S3's
 * minimum part, so assembly copies it server side); then its new bytes go out as a small piece
 * like any others, and the run leaves memory to go out whole as one piece in the background,
 * which shadows its small ones, unless another run wrote over some of its bytes meanwhile (a
 * repair: its bytes there are stale and must not win again). The whole piece's PUT is never in
 * the way of the write-outs: a 5 MiB PUT to a loaded RGW takes a while, and the bytes (and,
 * through the backpressure below, the socket buffers) behind it were what a kill -9 lost. The small pieces a whole run shadows
 * stay in the bucket until the commit removes the partial blob: a replica that took the transfer
 * over (this one's lease lost, this one still running) reads and assembles the pieces it listed.
 * Only pieces a rewrite shadows (other bytes: a repair) are removed at once, so that no reader
 * meets those bytes again. A writer told its transfer is someone else's now (abandon) writes and
 * removes nothing more (a whole piece already on its way may land: the bytes of the small pieces
 * it shadows, and older than whatever the successor writes, whose generations come from a clock
 * read after the lease was lost, a ttl later). Writes go on while a write-out runs, and wait for it past twice
 * those bounds, so memory stays flat: about PIECE_BYTES a run, 2 x MEMORY_BYTES not yet in the bucket,
 * and up to CONSOLIDATING whole runs on their way.
 * A record() is durable when the promise it returns resolves: at the next write-out of the records'
 * timer, which puts the runs' new bytes, then `held` (the recorded ranges as far as pieces in the
 * bucket cover them; the write-outs memory asks for put pieces only). So a
 * resume never claims a byte that was only in memory. Nor one recorded only after its piece went out:
 * each piece says in its metadata (`recorded`) which of its bytes were recorded when it was put, so
 * a piece is as good as a `held` the moment it lands: a resume trusts `held` for the pieces it was
 * written after (up to its `through`, the newest generation the writer knew then) and, for each
 * newer piece, its recorded bytes where no newer piece shadows it (one HEAD each: the pieces of
 * about one write-out). A kill -9 thus loses the bytes only in memory, not also those put
 * since the last `held`. Bytes a repair forgot (resetHeld) are not recorded when a later piece
 * holds them again, and the pieces before that `held` are its to judge. A piece written again (a repair, or a run
 * whole) gets a later generation, which wins where pieces overlap. Reads come from the runs in
 * memory first (the prefix hash reads just behind the writes), then from the pieces by ranged GETs;
 * a piece removed under a read (shadowed by a rewrite) is looked up again. Commit
 * assembles the pieces into the blob server side (assemble.ts).
 */
import { Readable } from 'node:stream';
import { RegistryError } from '../../oci/errors.ts';
import { requireDigest } from '../../oci/digest.ts';
import type { ByteRange } from '../../oci/range.ts';
import { RangeSet } from '../../transfer/range-set.ts';
import type { PartialBlob, PartialBlobInfo, PartialBlobStorage, PartialScratch } from '../partial-blobs.ts';
import { usageOf } from '../partial-blobs.ts';
import { assembleSegments, type Segment } from './assemble.ts';
import { MIN_PART_BYTES, type S3Bucket } from './bucket.ts';
import { keys } from './keys.ts';

/** A run goes out whole as one piece at this size: S3's minimum part, so assembly copies it server side. */
const PIECE_BYTES = MIN_PART_BYTES;
/** At most this many bytes only in memory (what a takeover after a kill fetches again): then they go out as small pieces. */
export const MEMORY_BYTES = 1024 * 1024;
const WRITE_OUT_MS = 1000;
/**
 * Runs in memory, counted by the runs still there (a run all in the bucket and not written for
 * WRITE_OUT_MS has left: about one per connection writing the blob: each may grow to a whole piece, so nearly all bytes copy server side at
 * commit), at least RUNS_MIN and at most RUNS_MAX of them, each up to RUN_BYTES: past that the
 * largest runs all in the bucket leave memory (their bytes then go through the replica at commit).
 * So one partial blob holds at most RUNS_MAX x RUN_BYTES (96 MiB) in memory, and the connections
 * of one upstream link (transfer.maxConnections, all its transfers together) about one run each.
 */
const RUN_BYTES = PIECE_BYTES + MEMORY_BYTES;
/** Whole runs put at once in the background (each PIECE_BYTES or a little more in memory until it lands). */
export const CONSOLIDATING = 4;
const RUNS_MIN = 4;
const RUNS_MAX = 16;
/** Times a read looks a piece up again after it was removed under it (shadowed by a newer one). */
const LOOKUPS = 3;
const READ_BYTES = 1024 * 1024;

/** A piece in the bucket: bytes start..end of the blob, generation orders rewrites. */
interface PieceInfo {
  key: string;
  start: number;
  end: number;
  generation: string;
  /** Its bytes that were recorded when it was put; undefined until read (its metadata). */
  recorded?: RangeSet;
}

/** Bytes arriving front to back at start.., in memory until they go out whole as one piece. */
interface Run {
  start: number;
  chunks: Buffer[];
  bytes: number;
  /** The first `durable` bytes are in the bucket already, as small pieces. */
  durable: number;
  /** Another run wrote some of the same bytes since (a repair): this one's are stale there, so it never goes out whole. */
  overwritten: boolean;
  /** Its small pieces since it last went out whole: the whole piece holds the same bytes. */
  smallPieces: string[];
  lastWrite: number;
}

let generationCounter = 0;
let lastGeneration = '';
/**
 * Sortable across processes: ms since the epoch, then a counter of this process; always later than
 * every generation this process issued and than `after` (the newest piece the writer knows, which a
 * replica with a clock ahead may have written: a resume then trusts this writer's pieces past it).
 */
function nextGeneration(after = ''): string {
  let g = `${String(Date.now()).padStart(15, '0')}${String(++generationCounter % 1e6).padStart(6, '0')}`;
  const floor = after > lastGeneration ? after : lastGeneration;
  if (g <= floor) g = (BigInt(floor) + 1n).toString().padStart(21, '0');
  lastGeneration = g;
  return g;
}

/** The newest generation among the pieces ('' for none). */
function newestGeneration(pieces: readonly PieceInfo[]): string {
  let newest = '';
  for (const p of pieces) if (p.generation > newest) newest = p.generation;
  return newest;
}

function parsePiece(prefix: string, key: string): PieceInfo | undefined {
  const m = /^(\d{16})-(\d{16})-(\d{21})$/.exec(key.slice(prefix.length));
  return m ? { key, start: Number(m[1]), end: Number(m[2]), generation: m[3] as string } : undefined;
}

/** Where each byte of [0, size) lives, newest piece first: segments in blob order, and what they cover. */
function coverage(pieces: readonly PieceInfo[]): { segments: Array<Segment & { at: number }>; covered: RangeSet } {
  const covered = new RangeSet();
  const segments: Array<Segment & { at: number }> = [];
  for (const p of [...pieces].sort((a, b) => (a.generation < b.generation ? 1 : a.generation > b.generation ? -1 : 0))) {
    for (const gap of covered.gaps(p.start, p.end + 1)) {
      segments.push({ key: p.key, start: gap.start - p.start, end: gap.end - 1 - p.start, at: gap.start });
    }
    covered.add(p.start, p.end + 1);
  }
  segments.sort((a, b) => a.at - b.at);
  return { segments, covered };
}

/** The pieces put after `held` was written (newer than its `through`) that hold some byte of the blob now; none for a `held` of an older writer. */
function newerThan(held: HeldRecord, pieces: readonly PieceInfo[]): PieceInfo[] {
  if (held.through === undefined) return [];
  const used = new Set(coverage(pieces).segments.map((s) => s.key));
  return pieces.filter((p) => p.generation > (held.through as string) && used.has(p.key));
}

/**
 * What a resume may claim: the recorded ranges of `held` as far as pieces cover them, and of each
 * piece newer than its `through` the bytes recorded when it was put, where no newer piece shadows it.
 */
function trusted(pieces: readonly PieceInfo[], held: HeldRecord): RangeSet {
  const { segments, covered } = coverage(pieces);
  const out = intersect(held.ranges, covered);
  const newer = new Map(newerThan(held, pieces).map((p) => [p.key, p]));
  for (const s of segments) {
    const recorded = newer.get(s.key)?.recorded;
    if (!recorded) continue;
    for (const r of intersect(new RangeSet([{ start: s.at, end: s.at + s.end - s.start + 1 }]), recorded).intervals) out.add(r.start, r.end);
  }
  return out;
}

/** At most this many ranges in a piece's `recorded` (S3 metadata is small): more is cut short, and claims less. */
const RECORDED_RANGES = 32;

/** A piece's `recorded` metadata: its bytes in `held`, `start-end` (half-open) comma-separated. */
function recordedText(held: RangeSet, start: number, end: number): string {
  return intersect(new RangeSet([{ start, end }]), held).intervals.slice(0, RECORDED_RANGES).map((i) => `${i.start}-${i.end}`).join(',');
}

function parseRecorded(text: string | undefined, piece: PieceInfo): RangeSet {
  const out = new RangeSet();
  for (const part of (text ?? '').split(',').slice(0, RECORDED_RANGES)) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m) out.add(Math.max(piece.start, Number(m[1])), Math.min(piece.end + 1, Number(m[2])));
  }
  return out;
}

function intersect(a: RangeSet, b: RangeSet): RangeSet {
  const out = new RangeSet();
  for (const i of a.intervals) {
    let at = i.start;
    for (const gap of b.gaps(i.start, i.end)) {
      if (gap.start > at) out.add(at, gap.start);
      at = gap.end;
    }
    if (at < i.end) out.add(at, i.end);
  }
  return out;
}

/** Positional reads of the pieces in the bucket (the newest piece wins where they overlap). */
class PieceReader {
  constructor(protected pieces: PieceInfo[], protected readonly bucket: S3Bucket, private readonly reload?: () => Promise<PieceInfo[]>) {}

  /** Up to into.length bytes at pos, not past limit (exclusive); 0 where no piece holds pos. */
  async readPieces(pos: number, into: Uint8Array, limit = Infinity): Promise<number> {
    for (let lookup = 0; lookup < LOOKUPS; lookup++) {
      const seg = coverage(this.pieces).segments.find((s) => s.at <= pos && pos <= s.at + s.end - s.start);
      if (!seg) return 0;
      const want = Math.min(into.length, seg.at + seg.end - seg.start + 1 - pos, limit - pos);
      if (want <= 0) return 0;
      const from = seg.start + (pos - seg.at);
      const got = await this.bucket.getBytes(seg.key, { start: from, end: from + want - 1 });
      if (got) {
        const n = Math.min(want, got.length);
        into.set(got.subarray(0, n));
        return n;
      }
      // Removed meanwhile: shadowed by a rewrite (look again), or the partial went (committed, discarded).
      if (!(await this.forgotten(seg.key))) return 0;
    }
    return 0;
  }

  read(pos: number, into: Uint8Array): Promise<number> {
    return this.readPieces(pos, into);
  }

  /** Whether the pieces known now no longer include key (worth a second look). */
  protected async forgotten(key: string): Promise<boolean> {
    if (this.reload) this.pieces = await this.reload();
    return !this.pieces.some((p) => p.key === key);
  }
}

class S3PartialBlob extends PieceReader implements PartialBlob {
  private runs: Run[] = [];
  /** Bytes of the runs not yet in the bucket. */
  private pending = 0;
  private readonly held: RangeSet;
  private heldDirty = false;
  /** A write-out queued for the records' timer, a flush or a close: it writes the held record too. */
  private heldDue = false;
  private committed = false;
  private closed = false;
  /** Another writer owns the partial blob now: nothing more is written or removed. */
  private abandoned = false;
  /** What every bucket write waits for first (PartialBlob.fence). */
  private fenceUntil: (() => Promise<void>) | undefined;
  /** Small pieces a whole piece of their run shadows (same bytes): kept in the bucket until the commit. */
  private readonly sameBytes = new Set<string>();
  /** Whole runs on their way to the bucket as one piece each (consolidate). */
  private readonly consolidating = new Set<Promise<void>>();
  private writing: Promise<void> = Promise.resolve();
  /** A write-out queued and not started yet: every caller who needs one joins it. */
  private queuedOut: Promise<void> | undefined;
  /** The write-out the next records wait for, and when the last one started. */
  private nextWriteOut: Promise<void> | undefined;
  private lastWriteOut = 0;
  private failure: unknown;

  constructor(
    readonly digest: string,
    readonly size: number,
    readonly resumed: readonly ByteRange[],
    pieces: PieceInfo[],
    bucket: S3Bucket,
    private readonly prefix: string,
    private readonly onClose: () => void,
  ) {
    super(pieces, bucket);
    this.held = new RangeSet(resumed.map((r) => ({ start: r.start, end: r.end + 1 })));
  }

  async write(pos: number, bytes: Uint8Array): Promise<void> {
    this.throwIfFailed();
    if (bytes.length === 0) return;
    // The caller may reuse its buffer once this resolves: keep a copy.
    const copy = Buffer.from(bytes);
    // Continue the newest run ending here, unless a newer run holds some of these bytes (a repair
    // of a range another connection wrote): then a new run, the newest, so that these bytes win in
    // reads (newest run first) and in the bucket (generations follow the runs' order).
    const end = pos + copy.length;
    const at = this.runs.findLastIndex((r) => r.start + r.bytes === pos);
    const newerOverlaps = this.runs.some((r, i) => i > at && pos < r.start + r.bytes && r.start < end);
    let run = at >= 0 && !newerOverlaps ? this.runs[at] : undefined;
    if (run) {
      run.chunks.push(copy);
      run.bytes += copy.length;
      run.lastWrite = Date.now();
    } else {
      run = { start: pos, chunks: [copy], bytes: copy.length, durable: 0, overwritten: false, smallPieces: [], lastWrite: Date.now() };
      this.runs.push(run);
    }
    for (const r of this.runs) if (r !== run && pos < r.start + r.bytes && r.start < end) r.overwritten = true;
    this.pending += copy.length;
    if (run.bytes < PIECE_BYTES && this.pending < MEMORY_BYTES) return;
    const out = this.writeOutSoon(false);
    // Writes go on while one write-out runs; past twice the bound they wait for it: memory stays
    // flat however fast the link is. A failure is kept for the next write (throwIfFailed).
    if (run.bytes >= PIECE_BYTES + MEMORY_BYTES || this.pending >= 2 * MEMORY_BYTES) await out;
    else out.catch(() => {});
  }

  override async read(pos: number, into: Uint8Array): Promise<number> {
    if (into.length === 0 || pos >= this.size) return 0;
    // Newest first: a run in memory, written after any piece.
    for (let i = this.runs.length - 1; i >= 0; i--) {
      const run = this.runs[i] as Run;
      if (pos < run.start || pos >= run.start + run.bytes) continue;
      return copyFromRun(run, pos, into);
    }
    // From the pieces, up to where a newer run in memory starts.
    let limit = Infinity;
    for (const run of this.runs) if (run.start > pos) limit = Math.min(limit, run.start);
    return this.readPieces(pos, into, limit);
  }

  /** Resolves once the range is in the bucket (the next write-out: at most WRITE_OUT_MS away). */
  record(range: ByteRange): Promise<void> {
    this.held.add(range.start, range.end + 1);
    this.heldDirty = true;
    this.nextWriteOut ??= new Promise<void>((resolve, reject) => {
      const delay = Math.max(0, this.lastWriteOut + WRITE_OUT_MS - Date.now());
      setTimeout(() => {
        this.nextWriteOut = undefined;
        this.lastWriteOut = Date.now();
        if (this.closed) {
          resolve();
          return;
        }
        this.writeOutSoon(true).then(resolve, reject);
      }, delay).unref();
    });
    return this.nextWriteOut;
  }

  async flush(): Promise<void> {
    await this.writeOutSoon(true);
    this.throwIfFailed();
  }

  /** The recorded ranges in pieces in the bucket: what another replica can read (runs still in memory are not). */
  sharedRanges(): ByteRange[] {
    return intersect(this.held, coverage(this.pieces).covered).intervals.map((i) => ({ start: i.start, end: i.end - 1 }));
  }

  async resetHeld(held: readonly ByteRange[]): Promise<void> {
    this.held.clear();
    for (const r of held) this.held.add(r.start, r.end + 1);
    this.heldDirty = true;
    await this.enqueue(() => this.writeHeld());
  }

  async scratch(): Promise<PartialScratch> {
    return new MemoryScratch();
  }

  async commit(hashed: string): Promise<void> {
    if (hashed !== this.digest) {
      throw new RegistryError('DIGEST_INVALID', `content digest ${hashed} does not match ${this.digest}`, { expected: this.digest, actual: hashed });
    }
    await this.flush();
    await this.consolidated();
    const { segments, covered } = coverage(this.pieces);
    const missing = covered.gaps(0, this.size);
    if (missing.length > 0) throw new Error(`partial blob ${this.digest} lacks bytes ${missing[0]?.start}-${(missing[0]?.end ?? 0) - 1} at commit`);
    await assembleSegments(this.bucket, segments, keys.blob(this.digest));
    this.committed = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    if (this.committed) {
      await this.writing.catch(() => undefined);
      await this.consolidated();
      await removeAll(this.bucket, this.prefix);
      return;
    }
    await this.writeOutSoon(true).catch(() => undefined);
    await this.consolidated();
  }

  async discard(): Promise<void> {
    await this.close();
    if (this.committed || this.abandoned) return;
    await removeAll(this.bucket, this.prefix);
  }

  async abandon(): Promise<void> {
    this.abandoned = true;
    this.runs = [];
    this.pending = 0;
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  /**
   * A write-out that starts after whatever runs now (the one already queued, if any); `held`: it
   * also writes the held record. The write-outs that memory asks for (MEMORY_BYTES waiting) put
   * pieces only: each piece vouches for its recorded bytes (its `recorded`), so a resume needs no
   * held for them, and a PUT less per write-out keeps what waits in memory lower. The held record
   * goes out with the write-outs the records' timer asks for (at most every WRITE_OUT_MS), flush
   * and close: the bytes recorded only after their piece went out are in it.
   */
  private writeOutSoon(held: boolean): Promise<void> {
    if (held) this.heldDue = true;
    this.queuedOut ??= this.enqueue(() => {
      this.queuedOut = undefined;
      return this.writeOut();
    });
    return this.queuedOut;
  }

  fence(until: () => Promise<void>): void {
    this.fenceUntil = until;
  }

  /** Bucket writes one after the other (a run is never written twice at once), each past the fence. */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.writing.then(async () => {
      await this.fenceUntil?.();
      await fn();
    });
    this.writing = next.catch((e: unknown) => {
      this.failure ??= e;
    });
    return next;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Puts what the runs hold that the bucket does not: a run of PIECE_BYTES whole as one piece,
   * others' new bytes as small pieces; then removes what the whole ones shadow, then writes the
   * held ranges the bucket now covers.
   */
  private async writeOut(): Promise<void> {
    if (this.abandoned) return;
    const puts = this.runs.filter((r) => r.bytes >= PIECE_BYTES || r.bytes > r.durable).map((run) => this.putRun(run));
    const failed = (await Promise.allSettled(puts)).find((p) => p.status === 'rejected');
    if (failed) throw failed.reason;
    // A run all in the bucket leaves memory once its request stopped writing (it may still write the bytes that follow).
    this.runs = this.runs.filter((r) => r.bytes > r.durable || Date.now() - r.lastWrite < WRITE_OUT_MS);
    // Past a run per connection writing: the largest runs all in the bucket leave memory (their small pieces stay as they are).
    const budget = Math.min(Math.max(this.runs.length, RUNS_MIN), RUNS_MAX) * RUN_BYTES;
    let inMemory = this.runs.reduce((n, r) => n + r.bytes, 0);
    for (const r of [...this.runs].sort((a, b) => b.bytes - a.bytes)) {
      if (inMemory <= budget) break;
      if (r.durable !== r.bytes) continue;
      inMemory -= r.bytes;
      r.start += r.bytes;
      r.chunks = [];
      r.bytes = 0;
      r.durable = 0;
    }
    if (puts.length > 0) await this.dropShadowed();
    if (this.heldDue) {
      this.heldDue = false;
      if (this.heldDirty) await this.writeHeld();
    }
  }

  /**
   * One run's new bytes, as a small piece; a run that made PIECE_BYTES then leaves memory (it
   * continues after) and goes out whole as one piece in the background (consolidate), unless it
   * was written over meanwhile. The new bytes go first and alone: a whole piece's PUT (5 MiB and
   * more, slow on a loaded RGW) held them back before, and with them every write-out after it, so
   * that a kill -9 lost what waited in memory and what the backpressure left in socket buffers.
   */
  private async putRun(run: Run): Promise<void> {
    // Writes that continue the run while the put runs append chunks after these: only these go.
    const taken = run.chunks.length;
    const bytes = run.bytes;
    const durable = run.durable;
    if (durable < bytes) run.smallPieces.push(await this.putPiece(run.start + durable, run.start + bytes - 1, bytesOf(run.chunks.slice(0, taken), durable, bytes)));
    this.pending -= bytes - durable;
    if (bytes < PIECE_BYTES) {
      run.durable = bytes;
      return;
    }
    // Written over while its small piece went (a repair): its bytes there are stale, they never go out again.
    const whole = run.overwritten ? undefined : { start: run.start, chunks: run.chunks.slice(0, taken), smallPieces: run.smallPieces };
    // The run continues after what went: later writes extend it from there.
    run.start += bytes;
    run.chunks = run.chunks.slice(taken);
    run.bytes -= bytes;
    run.durable = 0;
    run.overwritten = false;
    run.smallPieces = [];
    if (whole) await this.consolidate(whole.start, bytes, whole.chunks, whole.smallPieces);
  }

  /**
   * Puts bytes start..end as a piece, newer than every piece known; `shadows`: the small pieces
   * of the same bytes it replaces (kept until the commit, see dropShadowed). Its key.
   */
  private async putPiece(start: number, end: number, body: Buffer, shadows: readonly string[] = []): Promise<string> {
    const generation = nextGeneration(newestGeneration(this.pieces));
    const key = `${this.prefix}pieces/${String(start).padStart(16, '0')}-${String(end).padStart(16, '0')}-${generation}`;
    // Recorded now: what a resume may claim of it before the next held (the engine records each write a moment after it).
    const recorded = recordedText(this.held, start, end + 1);
    await this.bucket.put(key, body, { metadata: { recorded } });
    this.pieces.push({ key, start, end, generation });
    for (const k of shadows) this.sameBytes.add(k);
    return key;
  }

  /**
   * A whole run (all its bytes in the bucket already, as small pieces) goes out as one piece, so
   * the commit copies it server side, beside the write-outs rather than in their way. At most
   * CONSOLIDATING at once (their bytes are in memory until they land): past that the write-out
   * waits for one. One that fails leaves the small pieces, which the commit streams through.
   */
  private async consolidate(start: number, bytes: number, chunks: Buffer[], smallPieces: readonly string[]): Promise<void> {
    // The runs of one write-out come here together, and a landing wakes every waiter: the slot is
    // checked and taken in one step (no await between), after the last wait.
    for (;;) {
      while (this.consolidating.size >= CONSOLIDATING) await Promise.race(this.consolidating);
      // The wait may outlast the write-out's pass of the fence.
      await this.fenceUntil?.();
      if (this.abandoned) return;
      if (this.consolidating.size < CONSOLIDATING) break;
    }
    const job: Promise<void> = this.putPiece(start, start + bytes - 1, bytesOf(chunks, 0, bytes), smallPieces)
      // A failure loses nothing: the small pieces stay, and the commit streams their bytes through this replica.
      .then(() => undefined, () => undefined)
      .finally(() => this.consolidating.delete(job));
    this.consolidating.add(job);
  }

  /** Waits for the whole pieces on their way (the commit copies them; nothing may land after the partial blob is removed). */
  private async consolidated(): Promise<void> {
    while (this.consolidating.size > 0) await Promise.all(this.consolidating);
  }

  /** The recorded ranges, as far as pieces in the bucket cover them, and through which piece they account for the pieces. */
  private async writeHeld(): Promise<void> {
    if (this.abandoned) return;
    this.heldDirty = false;
    const durable = intersect(this.held, coverage(this.pieces).covered);
    await this.bucket.put(`${this.prefix}held`, heldText(this.size, durable, newestGeneration(this.pieces)));
  }

  /**
   * Forgets pieces that newer ones cover whole. Those a rewrite shadowed (a repair: other bytes)
   * are removed; a run's small pieces shadowed by its whole piece stay until the commit.
   */
  private async dropShadowed(): Promise<void> {
    const used = new Set(coverage(this.pieces).segments.map((s) => s.key));
    const shadowed = this.pieces.filter((p) => !used.has(p.key));
    if (shadowed.length === 0) return;
    this.pieces = this.pieces.filter((p) => used.has(p.key));
    const stale = shadowed.filter((p) => !this.sameBytes.has(p.key));
    for (const p of shadowed) this.sameBytes.delete(p.key);
    if (stale.length > 0 && !this.abandoned) await this.bucket.deleteMany(stale.map((p) => p.key));
  }
}

/** The `held` record as read: its size, ranges, and the newest piece generation it accounts for (absent: written before `through` existed). */
interface HeldRecord {
  size: number;
  ranges: RangeSet;
  through?: string;
}

function heldText(size: number, held: RangeSet, through: string): string {
  return JSON.stringify({ size, held: held.intervals.map((i) => [i.start, i.end]), through });
}

/** Bytes from..to (exclusive) of chunks laid end to end, as one buffer. */
function bytesOf(chunks: readonly Buffer[], from: number, to: number): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const c of chunks) {
    const s = Math.max(from, at);
    const e = Math.min(to, at + c.length);
    if (s < e) parts.push(s === at && e === at + c.length ? c : c.subarray(s - at, e - at));
    at += c.length;
    if (at >= to) break;
  }
  return Buffer.concat(parts, to - from);
}

function copyFromRun(run: Run, pos: number, into: Uint8Array): number {
  let skip = pos - run.start;
  let copied = 0;
  for (const chunk of run.chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    const n = Math.min(chunk.length - skip, into.length - copied);
    into.set(chunk.subarray(skip, skip + n), copied);
    copied += n;
    skip = 0;
    if (copied === into.length) break;
  }
  return copied;
}

/** The repair's second copy of some pieces, in memory (pieces are a few MiB). */
class MemoryScratch implements PartialScratch {
  private readonly runs: Run[] = [];

  async write(pos: number, bytes: Uint8Array): Promise<void> {
    this.runs.push({ start: pos, chunks: [Buffer.from(bytes)], bytes: bytes.length, durable: 0, overwritten: false, smallPieces: [], lastWrite: 0 });
  }

  async read(pos: number, into: Uint8Array): Promise<number> {
    for (let i = this.runs.length - 1; i >= 0; i--) {
      const run = this.runs[i] as Run;
      if (pos >= run.start && pos < run.start + run.bytes) return copyFromRun(run, pos, into);
    }
    return 0;
  }

  async close(): Promise<void> {
    this.runs.length = 0;
  }
}

async function removeAll(bucket: S3Bucket, prefix: string): Promise<void> {
  const found: string[] = [];
  for await (const o of bucket.list(prefix)) found.push(o.key);
  await bucket.deleteMany(found);
}

export class S3PartialBlobStorage implements PartialBlobStorage {
  /** The partial blobs open in this process: reads go through them (their newest bytes are in memory). */
  private readonly opened = new Map<string, S3PartialBlob>();

  constructor(private readonly bucket: S3Bucket) {}

  async open(digest: string, size: number): Promise<PartialBlob> {
    requireDigest(digest);
    const prefix = keys.partial(digest);
    const { pieces, held } = await this.load(prefix);
    let resumed: ByteRange[] = [];
    if (held && held.size === size) {
      await this.readRecorded(newerThan(held, pieces));
      resumed = trusted(pieces, held).intervals.map((i) => ({ start: i.start, end: i.end - 1 }));
    } else if (pieces.length > 0 || held) {
      // Another size, or pieces without a record: nothing of it can be trusted.
      await removeAll(this.bucket, prefix);
      pieces.length = 0;
    }
    // held exists from the start: has() is true, and the partial shows in listings, at once.
    if (!held || held.size !== size) await this.bucket.put(`${prefix}held`, heldText(size, new RangeSet(), ''));
    // A partial closed late (its lease lost, the digest opened again here) must not unlist the new one.
    const partial: S3PartialBlob = new S3PartialBlob(digest, size, resumed, pieces, this.bucket, prefix, () => {
      if (this.opened.get(digest) === partial) this.opened.delete(digest);
    });
    this.opened.set(digest, partial);
    return partial;
  }

  async has(digest: string): Promise<boolean> {
    return (await this.bucket.head(`${keys.partial(digest)}held`)) !== undefined;
  }

  /** From the partial blob open here, else its pieces in the bucket, else the blob it became. */
  async read(digest: string, range: ByteRange): Promise<Readable> {
    const local = this.opened.get(digest);
    const reader = local ?? (await this.bucketReader(digest));
    if (!reader && !(await this.bucket.head(keys.blob(digest)))) {
      throw new RegistryError('BLOB_UNKNOWN', `no partial blob and no blob ${digest}`, { digest });
    }
    const bucket = this.bucket;
    return Readable.from((async function* () {
      let pos = range.start;
      while (pos <= range.end) {
        const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, range.end + 1 - pos));
        const n = reader ? await reader.read(pos, buf) : 0;
        if (n > 0) {
          yield buf.subarray(0, n);
          pos += n;
          continue;
        }
        // Not (or no longer) in the partial: committed meanwhile, the rest is the blob's.
        const blob = await bucket.get(keys.blob(digest), { start: pos, end: range.end });
        if (!blob) throw new Error(`bytes ${pos}-${range.end} of ${digest} are neither in its partial blob nor in the blob`);
        yield* blob.body;
        return;
      }
    })(), { objectMode: false });
  }

  async *list(): AsyncIterable<PartialBlobInfo> {
    let current: PartialBlobInfo | undefined;
    for await (const o of this.bucket.list(keys.partials)) {
      const digest = digestOfPartialKey(o.key);
      if (digest === undefined) continue;
      if (current && current.digest !== digest) {
        yield current;
        current = undefined;
      }
      current ??= { digest, bytes: 0, touchedAt: 0 };
      if (o.key.includes('/pieces/')) current.bytes += o.size;
      current.touchedAt = Math.max(current.touchedAt, o.lastModified);
    }
    if (current) yield current;
  }

  async sweep(maxAgeMs: number, keep: (digest: string) => boolean = () => false, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for await (const p of this.list()) {
      if (keep(p.digest) || this.opened.has(p.digest) || now - p.touchedAt <= maxAgeMs) continue;
      await removeAll(this.bucket, keys.partial(p.digest));
      removed.push(p.digest);
    }
    return removed;
  }

  usage(): Promise<{ bytes: number; count: number }> {
    return usageOf(this.list());
  }

  readState(key: string): Promise<string | undefined> {
    return this.bucket.getText(keys.transferState(key));
  }

  async writeState(key: string, text: string): Promise<void> {
    await this.bucket.put(keys.transferState(key), text);
  }

  private async load(prefix: string): Promise<{ pieces: PieceInfo[]; held: HeldRecord | undefined }> {
    const pieces: PieceInfo[] = [];
    for await (const o of this.bucket.list(`${prefix}pieces/`)) {
      const p = parsePiece(`${prefix}pieces/`, o.key);
      if (p) pieces.push(p);
    }
    const text = await this.bucket.getText(`${prefix}held`);
    if (text === undefined) return { pieces, held: undefined };
    try {
      const parsed = JSON.parse(text) as { size: number; held: Array<[number, number]>; through?: unknown };
      const ranges = new RangeSet(parsed.held.map(([start, end]) => ({ start, end })));
      return { pieces, held: { size: parsed.size, ranges, ...(typeof parsed.through === 'string' ? { through: parsed.through } : {}) } };
    } catch {
      return { pieces, held: undefined };
    }
  }

  /** Each piece's `recorded` from its metadata (a piece without one, or gone meanwhile: nothing recorded). */
  private async readRecorded(pieces: PieceInfo[]): Promise<void> {
    await Promise.all(pieces.map(async (p) => {
      p.recorded = parseRecorded((await this.bucket.head(p.key))?.metadata?.recorded, p);
    }));
  }

  /** Positional reads of a partial blob open elsewhere (another replica): its pieces in the bucket. */
  private async bucketReader(digest: string): Promise<PieceReader | undefined> {
    const { pieces } = await this.load(keys.partial(digest));
    const prefix = keys.partial(digest);
    return pieces.length === 0 ? undefined : new PieceReader(pieces, this.bucket, async () => (await this.load(prefix)).pieces);
  }
}

function digestOfPartialKey(key: string): string | undefined {
  const m = /^partials\/(sha256|sha512)\/([0-9a-f]+)\//.exec(key);
  return m ? `${m[1]}:${m[2]}` : undefined;
}
