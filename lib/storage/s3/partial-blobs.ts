/**
 * The S3 backend's PartialBlobStorage: a pull-through transfer in progress as objects in the
 * bucket, so that another replica can read it as it grows and finish it if this one dies.
 *
 *   partials/<alg>/<hex>/pieces/<start>-<end>-<generation>   bytes start..end (inclusive) of the blob
 *   partials/<alg>/<hex>/held                                  { size, held: [[start, end), ...] } the ranges recorded
 *
 * S3 has no positional write. The engine writes each of its requests front to back, so writes
 * that continue one another gather in memory into a run; a run becomes a piece object (one put)
 * once it reaches PIECE_BYTES, and at each write-out. A record() is durable when the promise it
 * returns resolves: at the next write-out, which puts every run as a piece, then `held` (the
 * recorded ranges as far as pieces in the bucket cover them); write-outs run at most once per
 * WRITE_OUT_MS (the engine records every 16 KiB and does not wait). So a kill -9 loses at most the
 * last second of what was recorded, and a resume never claims a byte that was only in memory. A
 * piece written again (a repair) gets a later generation, which wins where pieces overlap. Reads come from the runs in memory first (the prefix hash reads just behind the
 * writes), then from the pieces by ranged GETs. Commit assembles the pieces into the blob server
 * side (assemble.ts). Memory: at most MAX_BUFFERED_BYTES per partial blob.
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

/** A run becomes a piece at this size: S3's minimum part, so assembly copies it server side. */
const PIECE_BYTES = MIN_PART_BYTES;
/** Above this many bytes in memory, the largest runs are written out at once. */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
const WRITE_OUT_MS = 1000;
const READ_BYTES = 1024 * 1024;

/** A piece in the bucket: bytes start..end of the blob, generation orders rewrites. */
interface PieceInfo {
  key: string;
  start: number;
  end: number;
  generation: string;
}

/** Bytes arriving front to back at start.., not yet in the bucket. */
interface Run {
  start: number;
  chunks: Buffer[];
  bytes: number;
  lastWrite: number;
}

let generationCounter = 0;
/** Sortable across processes: ms since the epoch, then a counter of this process. */
function nextGeneration(): string {
  return `${String(Date.now()).padStart(15, '0')}${String(++generationCounter % 1e6).padStart(6, '0')}`;
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
  constructor(protected pieces: PieceInfo[], protected readonly bucket: S3Bucket) {}

  /** Up to into.length bytes at pos, not past limit (exclusive); 0 where no piece holds pos. */
  async readPieces(pos: number, into: Uint8Array, limit = Infinity): Promise<number> {
    const seg = coverage(this.pieces).segments.find((s) => s.at <= pos && pos <= s.at + s.end - s.start);
    if (!seg) return 0;
    const want = Math.min(into.length, seg.at + seg.end - seg.start + 1 - pos, limit - pos);
    if (want <= 0) return 0;
    const from = seg.start + (pos - seg.at);
    const got = await this.bucket.getBytes(seg.key, { start: from, end: from + want - 1 });
    if (!got) return 0;
    const n = Math.min(want, got.length);
    into.set(got.subarray(0, n));
    return n;
  }

  read(pos: number, into: Uint8Array): Promise<number> {
    return this.readPieces(pos, into);
  }
}

class S3PartialBlob extends PieceReader implements PartialBlob {
  private runs: Run[] = [];
  private buffered = 0;
  private readonly held: RangeSet;
  private heldDirty = false;
  private committed = false;
  private closed = false;
  private writing: Promise<void> = Promise.resolve();
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
    const run = this.runs.find((r) => r.start + r.bytes === pos);
    if (run) {
      run.chunks.push(copy);
      run.bytes += copy.length;
      run.lastWrite = Date.now();
    } else {
      this.runs.push({ start: pos, chunks: [copy], bytes: copy.length, lastWrite: Date.now() });
    }
    this.buffered += copy.length;
    const full = (r: Run): boolean => r.bytes >= PIECE_BYTES;
    if (this.runs.some(full)) await this.enqueue(() => this.writeOut(full));
    if (this.buffered > MAX_BUFFERED_BYTES) {
      const largest = [...this.runs].sort((a, b) => b.bytes - a.bytes).slice(0, 4);
      await this.enqueue(() => this.writeOut((r) => largest.includes(r)));
    }
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
        this.enqueue(() => this.writeOut(() => true)).then(resolve, reject);
      }, delay).unref();
    });
    return this.nextWriteOut;
  }

  async flush(): Promise<void> {
    await this.enqueue(() => this.writeOut(() => true));
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
      await removeAll(this.bucket, this.prefix);
      return;
    }
    await this.enqueue(() => this.writeOut(() => true)).catch(() => undefined);
  }

  async discard(): Promise<void> {
    await this.close();
    if (this.committed) return;
    await removeAll(this.bucket, this.prefix);
  }

  /** Bucket writes one after the other (a run is never written twice at once). */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.writing.then(fn);
    this.writing = next.catch((e: unknown) => {
      this.failure ??= e;
    });
    return next;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Writes the chosen runs as pieces, then the held ranges the bucket now covers. */
  private async writeOut(choose: (run: Run) => boolean): Promise<void> {
    const chosen = this.runs.filter(choose);
    for (const run of chosen) {
      if (run.bytes === 0) continue;
      const generation = nextGeneration();
      const end = run.start + run.bytes - 1;
      const key = `${this.prefix}pieces/${String(run.start).padStart(16, '0')}-${String(end).padStart(16, '0')}-${generation}`;
      // Writes that continue the run while the put runs append chunks after these: only these go.
      const taken = run.chunks.length;
      const written = run.bytes;
      const body = Buffer.concat(run.chunks, written);
      await this.bucket.put(key, body);
      this.pieces.push({ key, start: run.start, end, generation });
      // The run continues after what was written: later writes extend it from there.
      run.start = end + 1;
      run.chunks = run.chunks.slice(taken);
      run.bytes -= written;
      this.buffered -= written;
    }
    // An emptied run stays a moment: its request may still be writing the bytes that follow.
    this.runs = this.runs.filter((r) => r.bytes > 0 || Date.now() - r.lastWrite < WRITE_OUT_MS);
    if (chosen.length > 0) await this.dropShadowed();
    if (this.heldDirty) await this.writeHeld();
  }

  /** The recorded ranges, as far as pieces in the bucket cover them. */
  private async writeHeld(): Promise<void> {
    this.heldDirty = false;
    const durable = intersect(this.held, coverage(this.pieces).covered);
    await this.bucket.put(`${this.prefix}held`, JSON.stringify({ size: this.size, held: durable.intervals.map((i) => [i.start, i.end]) }));
  }

  /** Removes pieces that newer ones cover whole (a repair rewrote them). */
  private async dropShadowed(): Promise<void> {
    const used = new Set(coverage(this.pieces).segments.map((s) => s.key));
    const shadowed = this.pieces.filter((p) => !used.has(p.key));
    if (shadowed.length === 0) return;
    this.pieces = this.pieces.filter((p) => used.has(p.key));
    await this.bucket.deleteMany(shadowed.map((p) => p.key));
  }
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
    this.runs.push({ start: pos, chunks: [Buffer.from(bytes)], bytes: bytes.length, lastWrite: 0 });
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
      const trusted = intersect(held.ranges, coverage(pieces).covered);
      resumed = trusted.intervals.map((i) => ({ start: i.start, end: i.end - 1 }));
    } else if (pieces.length > 0 || held) {
      // Another size, or pieces without a record: nothing of it can be trusted.
      await removeAll(this.bucket, prefix);
      pieces.length = 0;
    }
    // held exists from the start: has() is true, and the partial shows in listings, at once.
    if (!held || held.size !== size) await this.bucket.put(`${prefix}held`, JSON.stringify({ size, held: [] }));
    const partial = new S3PartialBlob(digest, size, resumed, pieces, this.bucket, prefix, () => this.opened.delete(digest));
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

  private async load(prefix: string): Promise<{ pieces: PieceInfo[]; held: { size: number; ranges: RangeSet } | undefined }> {
    const pieces: PieceInfo[] = [];
    for await (const o of this.bucket.list(`${prefix}pieces/`)) {
      const p = parsePiece(`${prefix}pieces/`, o.key);
      if (p) pieces.push(p);
    }
    const text = await this.bucket.getText(`${prefix}held`);
    if (text === undefined) return { pieces, held: undefined };
    try {
      const parsed = JSON.parse(text) as { size: number; held: Array<[number, number]> };
      return { pieces, held: { size: parsed.size, ranges: new RangeSet(parsed.held.map(([start, end]) => ({ start, end }))) } };
    } catch {
      return { pieces, held: undefined };
    }
  }

  /** Positional reads of a partial blob open elsewhere (another replica): its pieces in the bucket. */
  private async bucketReader(digest: string): Promise<PieceReader | undefined> {
    const { pieces } = await this.load(keys.partial(digest));
    return pieces.length === 0 ? undefined : new PieceReader(pieces, this.bucket);
  }
}

function digestOfPartialKey(key: string): string | undefined {
  const m = /^partials\/(sha256|sha512)\/([0-9a-f]+)\//.exec(key);
  return m ? `${m[1]}:${m[2]}` : undefined;
}
