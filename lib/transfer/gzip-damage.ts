/**
 * Where a gzip blob (an image layer: a tar, gzipped) first shows damage, from its bytes alone.
 * A byte flipped in deflated data mostly throws the decoder out of step: it soon meets a code
 * or a distance that cannot be (an inflate error), or it emits bytes of another length, which
 * moves every tar header after it off its place (a header checksum that fails). Either way the
 * damage lies at or before the compressed offset where it showed, most often in the same piece or
 * the one before. A flip that leaves the output its length (a stored byte, a literal swapped for
 * another, a distance for another) shows only in the gzip CRC at the very end: where one changed
 * output byte explains that CRC (crc-flip.ts: a stored byte, a swapped literal nothing copies
 * later), the compressed bytes that made it are the suspects; about 6 such places in 100 MiB of
 * output match by chance besides the real one. Otherwise nothing is said, as for a blob that is
 * not gzip.
 */
import { createInflateRaw, crc32 } from 'node:zlib';
import type { ByteRange } from '../oci/range.ts';
import type { PositionalReader } from '../storage/partial-blobs.ts';
import { singleByteChanges } from './crc-flip.ts';

/** Compressed bytes fed at a time: how closely a damage is placed. */
const FEED_BYTES = 64 * 1024;
/** Bytes read from the store at a time (an S3 partial blob answers each read with a ranged GET). */
const READ_BYTES = 1024 * 1024;
/** A gzip header longer than this (a file name, a comment) is not looked into. */
const HEADER_MAX_BYTES = 64 * 1024;
/** Bytes pushed to a DamageWatch and not yet inflated, at most (copies held: a few watches at once stay within a few MiB each); past it the watch stops and a repair inflates the layer again. */
const BACKLOG_BYTES = 4 * 1024 * 1024;
/** Output per zlib call: each is a trip to the thread pool and back through the event loop (a busy mirror), 16 KiB by default. */
const INFLATE_CHUNK_BYTES = 1024 * 1024;
const TAR_BLOCK = 512;
/** The tar header's checksum field: bytes [148, 156), counted as spaces. */
const CHECKSUM_AT = 148;
const CHECKSUM_LEN = 8;

/** An octal field of a tar header, or the base-256 form (top bit set) of large sizes; NaN when neither. */
function tarNumber(field: Buffer): number {
  if (((field[0] as number) & 0x80) !== 0) {
    let n = (field[0] as number) & 0x7f;
    for (const b of field.subarray(1)) n = n * 256 + b;
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ ]+/, '');
  return /^[0-7]*$/.test(text) ? (text === '' ? 0 : parseInt(text, 8)) : NaN;
}

/** Whether a tar header's checksum holds (unsigned sum, or the signed one old tars wrote). */
function headerSums(h: Buffer): boolean {
  const stored = tarNumber(h.subarray(CHECKSUM_AT, CHECKSUM_AT + CHECKSUM_LEN));
  if (Number.isNaN(stored)) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= CHECKSUM_AT && i < CHECKSUM_AT + CHECKSUM_LEN ? 0x20 : (h[i] as number);
    unsigned += b;
    signed += b >= 0x80 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Follows the headers of a tar stream as its bytes go by. */
class TarHeaders {
  /** Offset of the next header in the tar stream. */
  private next = 0;
  private seen = 0;
  private readonly header = Buffer.alloc(TAR_BLOCK);
  private filled = 0;
  private ended = false;
  /** Headers that summed right: until the first one did, the stream may be no tar at all. */
  good = 0;
  /** Set when the stream turned out not to be a tar: nothing more is said. */
  private notTar = false;

  /** Takes the next bytes of the stream; false once a header (after a good one) fails its checksum. */
  push(buf: Buffer): boolean {
    let at = 0;
    while (at < buf.length && !this.ended && !this.notTar) {
      if (this.seen < this.next) {
        const skip = Math.min(this.next - this.seen, buf.length - at);
        at += skip;
        this.seen += skip;
        continue;
      }
      const take = Math.min(TAR_BLOCK - this.filled, buf.length - at);
      buf.copy(this.header, this.filled, at, at + take);
      this.filled += take;
      at += take;
      this.seen += take;
      if (this.filled < TAR_BLOCK) break;
      this.filled = 0;
      if (this.header.every((b) => b === 0)) {
        // The end of the archive (two zero blocks, then padding): nothing after it is checked.
        this.ended = true;
        break;
      }
      const size = tarNumber(this.header.subarray(124, 136));
      if (!headerSums(this.header) || Number.isNaN(size)) {
        if (this.good === 0) this.notTar = true;
        else return false;
        break;
      }
      this.good++;
      this.next = this.seen + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    }
    return true;
  }
}

/** Offsets a single changed output byte explains by chance, at most: past it the CRC says little. */
const MAX_SUSPECTS = 24;
/** How far the decoder's output may trail its input (a code's bits held until the next slice). */
const OUTPUT_LAG_BYTES = 64;
/** The gzip trailer: CRC-32 and length of the output, 4 bytes each, little-endian. */
const TRAILER_BYTES = 8;

export interface Damage {
  /** The compressed offset (exclusive) by which the blob showed damage: the damage is before it. */
  before?: number;
  /**
   * With `before`: the compressed offset the damage is at or after (the last tar header that
   * summed right came out of the bytes before it: a flip before them would have moved or garbled it).
   */
  after?: number;
  /**
   * Or, where it showed none before its end but its CRC failed: compressed ranges one of which
   * most likely holds it (each one output byte changed there explains the CRC), and the trailer.
   */
  suspects?: ByteRange[];
}

/**
 * The compressed offset (exclusive) by which the gzip blob in `stored` (`size` bytes) showed
 * damage: the damage is before it. Undefined when it is no gzip or showed none before its end.
 */
export async function firstDamage(stored: PositionalReader, size: number, signal?: AbortSignal): Promise<number | undefined> {
  return (await locateDamage(stored, size, signal))?.before;
}

/** Where the gzip blob in `stored` (`size` bytes) shows damage (Damage), or undefined: no gzip, or nothing to say. */
export async function locateDamage(stored: PositionalReader, size: number, signal?: AbortSignal): Promise<Damage | undefined> {
  const watch = new DamageWatch(size);
  const buf = Buffer.allocUnsafe(READ_BYTES);
  try {
    for (let pos = 0; pos < size && watch.active;) {
      signal?.throwIfAborted();
      const n = await stored.read(pos, buf.subarray(0, Math.min(READ_BYTES, size - pos)));
      if (n === 0) break;
      watch.push(pos, buf.subarray(0, n));
      pos += n;
      // A MiB in flight at a time: the read buffer is read into again, and a damage ends the reading.
      await watch.drained();
    }
    signal?.throwIfAborted();
    return await watch.result();
  } finally {
    watch.stop();
  }
}

/**
 * A DamageWatch over a blob being stored: told how far its bytes are final (`advance`: the
 * transfer's prefix hash), it inflates them at its own pace: the bytes handed with an advance
 * while it keeps up, else read back into one read buffer, never more than a buffer's worth held
 * however fast the bytes come (a prefix catching up on ranges that came ahead of it moves by many
 * MiB at once).
 */
export class DamageFollower {
  private readonly watch: DamageWatch;
  private available = 0;
  private pos = 0;
  private pumping: Promise<void> | undefined;
  private buf: Buffer | undefined;

  constructor(private readonly stored: PositionalReader, private readonly size: number) {
    this.watch = new DamageWatch(size);
  }

  /** Whether every byte was made available and the watch still listens (or showed damage). */
  get whole(): boolean {
    return this.available === this.size && (this.watch.active || this.watch.whole);
  }

  /**
   * Bytes [0, end) are stored and final; `bytes`, those just before end, where the caller has them
   * (the prefix hash): copied in when they come next and the watch's backlog stays within one
   * read buffer, so the common case reads nothing back. Else they are read back from the store at
   * the watch's pace.
   */
  advance(end: number, bytes?: Uint8Array): void {
    this.available = Math.min(this.size, Math.max(this.available, end));
    if (bytes && !this.pumping && this.pos === end - bytes.length && this.watch.backlog + bytes.length <= READ_BYTES) {
      this.watch.push(this.pos, bytes);
      this.pos = end;
      return;
    }
    this.pumping ??= this.pump().catch(() => this.watch.stop()).finally(() => {
      this.pumping = undefined;
      if (this.pos < this.available && this.watch.active) this.advance(this.available);
    });
  }

  /** What the watch says once it has read every byte made available (DamageWatch.result). */
  async result(): Promise<Damage | undefined> {
    while (this.pumping) await this.pumping;
    return this.watch.result();
  }

  stop(): void {
    this.watch.stop();
    this.buf = undefined;
  }

  private async pump(): Promise<void> {
    while (this.pos < this.available && this.watch.active) {
      this.buf ??= Buffer.allocUnsafe(READ_BYTES);
      const n = await this.stored.read(this.pos, this.buf.subarray(0, Math.min(READ_BYTES, this.available - this.pos)));
      if (n === 0) throw new Error(`short read at ${this.pos}`);
      this.watch.push(this.pos, this.buf.subarray(0, n));
      this.pos += n;
      await this.watch.drained();
    }
  }
}

/**
 * Where a gzip blob shows damage, from its bytes as they are pushed in order (the transfer's prefix
 * hash: at a mismatch the place is known already, not inflated from the start again while the
 * client waits). Pushed bytes are copied; past BACKLOG_BYTES not yet inflated (the process too busy
 * to keep up) it stops and says nothing.
 */
export class DamageWatch {
  /** Bytes pushed so far (the next push starts here). */
  private pushed = 0;
  /** The first bytes, until the gzip header in them is whole. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private bodyAt: number | undefined;
  private inflate: ReturnType<typeof createInflateRaw> | undefined;
  private readonly tar = new TarHeaders();
  private readonly trailer = Buffer.alloc(TRAILER_BYTES);
  /** Where each slice written to the inflater and not yet through it ends: the first is the one it inflates now. */
  private readonly inFlight: number[] = [];
  /** Where the inflated bytes end (the last slice through), and where the slice the last good tar header came out in starts. */
  private through = 0;
  private goodAt = 0;
  /** Damage shown by this offset (exclusive): a tar header out of place, or an inflate error. */
  private shown: number | undefined;
  /** Stopped, no gzip, or fallen behind: says nothing. */
  private mute = false;
  private crc = 0;
  private output = 0;
  /** Output bytes emitted by the time each slice was through: what compressed bytes made output byte u. */
  private readonly marks: Array<{ fed: number; output: number }> = [];
  private ended: Promise<void> | undefined;
  /** Bytes of the slice not yet whole (copies). */
  private pending: Buffer[] = [];
  private waiters: Array<() => void> = [];

  constructor(private readonly size: number) {}

  /** Whether it has something to say for the whole blob: a damage shown, or every byte inflated (not stopped). */
  get whole(): boolean {
    return this.shown !== undefined || (!this.mute && this.pushed === this.size && this.bodyAt !== undefined);
  }

  /** Whether more bytes can still tell something (no damage shown yet, not stopped). */
  get active(): boolean {
    return !this.mute && this.shown === undefined;
  }

  /** The next bytes of the blob, at `pos` (== what was pushed so far: a gap stops the watch). */
  push(pos: number, bytes: Uint8Array): void {
    if (!this.active) return;
    if (pos !== this.pushed || pos + bytes.length > this.size) return this.stop();
    this.pushed += bytes.length;
    const tail = Math.max(pos, this.size - TRAILER_BYTES);
    if (this.pushed > tail) this.trailer.set(bytes.subarray(tail - pos), tail - (this.size - TRAILER_BYTES));
    if (!this.head) return this.feed(pos, bytes);
    // Until the header is whole, every byte pushed is kept (a few at most: headers are short).
    const head = Buffer.concat([this.head, bytes]);
    const at = deflateStart(head);
    if (at === undefined) {
      if ((head.length >= 3 && !isGzip(head)) || head.length >= HEADER_MAX_BYTES) return this.stop();
      this.head = head;
      return;
    }
    this.head = undefined;
    if (this.size < at + TRAILER_BYTES) return this.stop();
    this.bodyAt = at;
    this.through = at;
    this.goodAt = at;
    this.start();
    this.feed(at, head.subarray(at));
  }

  /** Bytes pushed and not yet through the inflater (0 once stopped). */
  get backlog(): number {
    return this.active ? this.pushed - this.through : 0;
  }

  /** Resolves once what was pushed is inflated (or the watch stopped). */
  drained(): Promise<void> {
    if (!this.active || this.inFlight.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Where the blob shows damage, once every byte was pushed; undefined when it says nothing (no gzip, stopped, or nothing shown). */
  async result(): Promise<Damage | undefined> {
    if (this.shown === undefined && !this.mute && this.inflate && this.pushed === this.size) {
      const inflate = this.inflate;
      this.ended ??= new Promise<void>((resolve) => {
        inflate.once('end', resolve).once('close', resolve);
        inflate.end();
      });
      await this.ended;
    }
    const after = Math.max(this.bodyAt ?? 0, this.goodAt - OUTPUT_LAG_BYTES);
    if (this.shown !== undefined) return { before: this.shown, after };
    if (this.mute || this.bodyAt === undefined || this.pushed < this.size) return undefined;
    const suspects = crcSuspects(this.trailer, this.size, this.crc, this.output, this.marks);
    return suspects.length > 0 ? { suspects } : undefined;
  }

  /** Says nothing more (unless it showed damage already); the inflater is freed. */
  stop(): void {
    if (this.shown === undefined) this.mute = true;
    this.finish();
  }

  private start(): void {
    const inflate = createInflateRaw({ chunkSize: INFLATE_CHUNK_BYTES });
    this.inflate = inflate;
    inflate.on('data', (out: Buffer) => {
      if (this.shown !== undefined) return;
      this.crc = crc32(out, this.crc);
      this.output += out.length;
      const good = this.tar.good;
      if (!this.tar.push(out)) this.showAt(this.inFlight[0] ?? this.pushed);
      else if (this.tar.good > good) this.goodAt = this.through;
    });
    // The slice being inflated is where it showed (an error says nothing of the CRC).
    inflate.on('error', () => this.showAt(this.inFlight[0] ?? this.pushed));
  }

  private showAt(pos: number): void {
    if (this.shown !== undefined || this.mute) return;
    this.shown = pos;
    this.finish();
  }

  /**
   * Takes bytes at `pos` (the next ones of the deflate data) and writes them to the inflater a slice
   * at a time, slices ending at every FEED_BYTES of the blob however the bytes were pushed, so a
   * damage is placed within FEED_BYTES, the same way whatever the pushes were.
   */
  private feed(pos: number, bytes: Uint8Array): void {
    const inflate = this.inflate;
    const bodyAt = this.bodyAt ?? 0;
    for (let at = 0; inflate && at < bytes.length && this.active;) {
      const sliceEnd = Math.min(this.size, bodyAt + (Math.floor((pos + at - bodyAt) / FEED_BYTES) + 1) * FEED_BYTES);
      const take = Math.min(bytes.length - at, sliceEnd - (pos + at));
      // The copy: zlib keeps the chunk until it is processed, and the caller's buffer is reused.
      this.pending.push(Buffer.from(bytes.subarray(at, at + take)));
      at += take;
      if (pos + at < sliceEnd) break;
      const slice = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
      this.pending = [];
      if (sliceEnd - this.through > BACKLOG_BYTES) return this.stop();
      this.inFlight.push(sliceEnd);
      inflate.write(slice, () => {
        if (this.inflate !== inflate) return;
        this.inFlight.shift();
        this.through = sliceEnd;
        this.marks.push({ fed: sliceEnd, output: this.output });
        if (this.inFlight.length === 0) this.wake();
      });
    }
  }

  private finish(): void {
    this.inflate?.destroy();
    this.inflate = undefined;
    this.inFlight.length = 0;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function isGzip(head: Buffer): boolean {
  return head[0] === 0x1f && head[1] === 0x8b && head[2] === 8;
}

/** Where the deflate data of a gzip member starting at head[0] begins, or undefined (no gzip, or a header longer than head). */
function deflateStart(head: Buffer): number | undefined {
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 8) return undefined;
  const flags = head[3] as number;
  let at = 10;
  if (flags & 0x04) at += 2 + (at + 2 <= head.length ? head.readUInt16LE(at) : Infinity);
  for (const bit of [0x08, 0x10]) {
    if (!(flags & bit)) continue;
    const zero = head.indexOf(0, at);
    if (zero < 0) return undefined;
    at = zero + 1;
  }
  if (flags & 0x02) at += 2;
  return at < head.length ? at : undefined;
}

/**
 * Compressed ranges where one changed output byte would explain the CRC (the output as held is
 * `length` bytes with CRC `crc`; `trailer`, the blob's last 8 bytes), each the slice that made the byte (and a few bytes before it: the
 * decoder's output trails its input by a little), then the trailer itself. None when the output's
 * length is not the one the trailer says (no single changed byte), or too many places match.
 */
function crcSuspects(trailer: Buffer, size: number, crc: number, length: number, marks: ReadonlyArray<{ fed: number; output: number }>): ByteRange[] {
  const trailerRange = { start: size - TRAILER_BYTES, end: size - 1 };
  const intact = trailer.readUInt32LE(0) === crc >>> 0;
  if (trailer.readUInt32LE(4) !== length % 2 ** 32) return intact ? [trailerRange] : [];
  if (intact) return [];
  const changes = singleByteChanges(crc ^ trailer.readUInt32LE(0), length, MAX_SUSPECTS);
  if (!changes) return [trailerRange];
  const ranges: ByteRange[] = [];
  for (const c of changes) {
    // The first slice by whose end the output had passed the byte.
    let lo = 0;
    let hi = marks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((marks[mid] as { output: number }).output > c.offset) hi = mid;
      else lo = mid + 1;
    }
    const end = Math.min(size - 1, (marks[lo]?.fed ?? size) - 1);
    const start = Math.max(0, (marks[lo - 1]?.fed ?? 0) - OUTPUT_LAG_BYTES);
    ranges.push({ start, end });
  }
  return [...ranges.sort((a, b) => a.start - b.start), trailerRange];
}
