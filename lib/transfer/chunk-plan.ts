/**
 * Chunk planning, pure. The chunk size follows Dragonfly: the next power of two of
 * size / chunksPerBlob, clamped to [minChunkBytes, maxChunkBytes]. Ranges here are inclusive
 * [start, end], as in an HTTP Range header.
 */
import type { TransferTuning } from './tuning.ts';
import type { ByteRange } from '../oci/range.ts';
import type { RangeSet } from './range-set.ts';

export type ChunkSizing = Pick<TransferTuning, 'chunksPerBlob' | 'minChunkBytes' | 'maxChunkBytes'>;

export function nextPowerOfTwo(n: number): number {
  if (n <= 1) return 1;
  return 2 ** Math.ceil(Math.log2(n));
}

export function chunkSizeFor(size: number, cfg: ChunkSizing): number {
  const ideal = nextPowerOfTwo(Math.ceil(size / cfg.chunksPerBlob));
  const max = Math.max(cfg.minChunkBytes, cfg.maxChunkBytes);
  return Math.min(Math.max(ideal, cfg.minChunkBytes), max);
}

/** A blob has at most this many pieces (a relay's /chunks list of as many digests), unless they are chunks. */
export const MAX_PIECES = 4096;

/**
 * The pieces a corruption costs: `pieceBytes`, or the next power of two of size / MAX_PIECES for
 * a larger blob, never more than a chunk. A chunk (a request) spans several pieces: a flipped byte
 * costs its piece fetched again, not the chunk.
 */
export function pieceSizeFor(size: number, chunkSize: number, pieceBytes: number): number {
  return Math.min(chunkSize, Math.max(pieceBytes, nextPowerOfTwo(Math.ceil(size / MAX_PIECES))));
}

/** The chunks of a blob of `size` bytes, lowest offset first. */
export function planChunks(size: number, chunkSize: number): ByteRange[] {
  if (!(chunkSize > 0)) throw new RangeError(`chunk size must be positive, got ${chunkSize}`);
  const out: ByteRange[] = [];
  for (let start = 0; start < size; start += chunkSize) out.push({ start, end: Math.min(start + chunkSize, size) - 1 });
  return out;
}

/** What is left to fetch of each chunk, given the bytes already on disk; lowest offset first. */
export function planMissing(size: number, chunkSize: number, done: RangeSet): ByteRange[] {
  const out: ByteRange[] = [];
  for (const c of planChunks(size, chunkSize)) {
    for (const g of done.gaps(c.start, c.end + 1)) out.push({ start: g.start, end: g.end - 1 });
  }
  return out;
}

export function formatRange(r: ByteRange): string {
  return `${r.start}-${r.end}`;
}
