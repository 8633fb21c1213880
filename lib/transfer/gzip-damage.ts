/**
 * Where a gzip blob (an image layer: a tar, gzipped) first shows damage, from its bytes alone.
 * A byte flipped in deflated data mostly throws the decoder out of step: it soon meets a code
 * or a distance that cannot be (an inflate error), or it emits bytes of another length, which
 * moves every tar header after it off its place (a header checksum that fails). Either way the
 * damage lies at or before the compressed offset where it showed, most often in the same piece or
 * the one before. A flip that only swaps one literal for another shows nowhere but in the gzip
 * CRC at the very end, and then nothing is said (undefined), as for a blob that is not gzip.
 */
import { createGunzip } from 'node:zlib';
import type { PositionalReader } from '../storage/partial-blobs.ts';

/** Compressed bytes fed at a time: how closely a damage is placed. */
const FEED_BYTES = 64 * 1024;
/** Bytes read from the store at a time (an S3 partial blob answers each read with a ranged GET). */
const READ_BYTES = 1024 * 1024;
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
  private good = 0;
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

/** A check of the whole stream (its CRC or length): said only at the end, so it places nothing. */
function isEndCheck(err: Error): boolean {
  return /incorrect (data|length) check/.test(err.message);
}

/**
 * The compressed offset (exclusive) by which the gzip blob in `stored` (`size` bytes) showed
 * damage: the damage is before it. Undefined when it is no gzip or showed none before its end.
 */
export async function firstDamage(stored: PositionalReader, size: number, signal?: AbortSignal): Promise<number | undefined> {
  const buf = Buffer.allocUnsafe(READ_BYTES);
  if ((await stored.read(0, buf.subarray(0, 2))) < 2 || buf[0] !== 0x1f || buf[1] !== 0x8b) return undefined;
  const gunzip = createGunzip();
  const tar = new TarHeaders();
  let fed = 0;
  let shown: number | undefined;
  let failed: Error | undefined;
  gunzip.on('data', (out: Buffer) => {
    if (shown === undefined && !tar.push(out)) shown = fed;
  });
  gunzip.on('error', (e: Error) => {
    failed ??= e;
  });
  // An error destroys the stream: the write it came from never calls back.
  const closed = new Promise<void>((resolve) => gunzip.once('close', resolve));
  const ended = new Promise<void>((resolve) => gunzip.once('end', resolve));
  try {
    while (fed < size && shown === undefined && !failed) {
      signal?.throwIfAborted();
      const n = await stored.read(fed, buf.subarray(0, Math.min(READ_BYTES, size - fed)));
      if (n === 0) break;
      // Fed a slice at a time, so a damage is placed within FEED_BYTES.
      for (let at = 0; at < n && shown === undefined && !failed; at += FEED_BYTES) {
        const slice = buf.subarray(at, Math.min(n, at + FEED_BYTES));
        fed += slice.length;
        // The copy: zlib keeps the chunk until it is processed, and buf is read into again.
        await Promise.race([new Promise<void>((resolve) => gunzip.write(Buffer.from(slice), () => resolve())), closed]);
      }
    }
    if (shown === undefined && !failed) {
      gunzip.end();
      await Promise.race([ended, closed]);
    }
  } finally {
    gunzip.destroy();
  }
  if (shown !== undefined) return shown;
  if (!failed) return undefined;
  const err: Error = failed;
  return fed >= size && isEndCheck(err) ? undefined : fed;
}
