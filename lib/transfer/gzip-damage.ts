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
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const head = await stored.read(0, buf.subarray(0, Math.min(READ_BYTES, size)));
  const bodyAt = deflateStart(buf.subarray(0, head));
  if (bodyAt === undefined || size < bodyAt + TRAILER_BYTES) return undefined;
  const trailer = Buffer.alloc(TRAILER_BYTES);
  // Raw deflate, the header and trailer read here: a gunzip that fails its CRC drops the output of
  // its last write, and the CRC below needs every byte.
  const inflate = createInflateRaw({ chunkSize: INFLATE_CHUNK_BYTES });
  const tar = new TarHeaders();
  let fed = bodyAt;
  /** Where the slice being fed starts, and that of the slice the last good tar header came out in. */
  let sliceAt = bodyAt;
  let goodAt = bodyAt;
  let shown: number | undefined;
  let failed: Error | undefined;
  let crc = 0;
  let output = 0;
  /** Output bytes emitted by the time each slice was fed: what compressed bytes made output byte u. */
  const marks: Array<{ fed: number; output: number }> = [];
  inflate.on('data', (out: Buffer) => {
    crc = crc32(out, crc);
    output += out.length;
    if (shown !== undefined) return;
    const good = tar.good;
    if (!tar.push(out)) shown = fed;
    else if (tar.good > good) goodAt = sliceAt;
  });
  inflate.on('error', (e: Error) => {
    failed ??= e;
  });
  // An error destroys the stream: the write it came from never calls back.
  const closed = new Promise<void>((resolve) => inflate.once('close', resolve));
  const ended = new Promise<void>((resolve) => inflate.once('end', resolve));
  try {
    // The first read (the header) is fed from where the deflate data starts.
    for (let n = head, from = bodyAt; fed < size && shown === undefined && !failed; n = 0, from = 0) {
      signal?.throwIfAborted();
      const base = fed - from;
      if (n === 0) n = await stored.read(fed, buf.subarray(0, Math.min(READ_BYTES, size - fed)));
      if (n <= from) break;
      // The trailer (the CRC and length the output should have) is in the last read.
      const tail = Math.max(base, size - TRAILER_BYTES);
      if (base + n > tail) buf.copy(trailer, tail - (size - TRAILER_BYTES), tail - base, n);
      // Fed a slice at a time, so a damage is placed within FEED_BYTES.
      for (let at = from; at < n && shown === undefined && !failed; at += FEED_BYTES) {
        const slice = buf.subarray(at, Math.min(n, at + FEED_BYTES));
        sliceAt = fed;
        fed += slice.length;
        // The copy: zlib keeps the chunk until it is processed, and buf is read into again.
        await Promise.race([new Promise<void>((resolve) => inflate.write(Buffer.from(slice), () => resolve())), closed]);
        marks.push({ fed, output });
      }
    }
    if (shown === undefined && !failed) {
      inflate.end();
      await Promise.race([ended, closed]);
    }
  } finally {
    inflate.destroy();
  }
  const after = Math.max(bodyAt, goodAt - OUTPUT_LAG_BYTES);
  if (shown !== undefined) return { before: shown, after };
  if (failed) return { before: fed, after };
  signal?.throwIfAborted();
  const suspects = crcSuspects(trailer, size, crc, output, marks);
  return suspects.length > 0 ? { suspects } : undefined;
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
