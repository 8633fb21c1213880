/**
 * Pieces of a partial blob checked against their expected digests (a ferry relay's `/chunks`, or
 * the blob digest itself for a blob of one piece), one at a time in the order they completed.
 * Readers are released only what passed: a flipped byte costs one piece fetched again.
 */
import type { PositionalReader } from '../storage/partial-blobs.ts';
import { withSlab } from '../storage/buffer-pool.ts';
import { newHash, type Algorithm } from '../oci/digest.ts';
import type { ByteRange } from '../oci/range.ts';

/** Hex digest of bytes [r.start, r.end] as stored, read into `buf` (by default a pooled slab). */
export async function hashRange(stored: PositionalReader, r: ByteRange, algorithm: Algorithm, buf?: Buffer): Promise<string> {
  if (!buf) return withSlab((slab) => hashRange(stored, r, algorithm, slab));
  const hash = newHash(algorithm);
  for (let pos = r.start; pos <= r.end;) {
    const bytesRead = await stored.read(pos, buf.subarray(0, Math.min(buf.length, r.end + 1 - pos)));
    if (bytesRead === 0) throw new Error(`short read at ${pos}`);
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex');
}

/** "sha256:<hex>" or bare hex, as the hex. */
export function bareHex(digest: string): string {
  return digest.replace(/^[a-z0-9]+:/, '');
}

export class PieceChecks {
  private readonly queue: number[] = [];
  private readonly queued = new Set<number>();
  private running: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly file: () => PositionalReader,
    private readonly pieces: readonly ByteRange[],
    /** Expected hex of each piece. */
    private readonly expected: readonly string[],
    private readonly algorithm: Algorithm,
    /** `actual` is the hex found on disk; equal to the expected one when the piece is good. */
    private readonly result: (index: number, good: boolean, actual: string) => void,
  ) {}

  /** Queues a piece whose bytes are all written (a piece already queued is not queued twice). */
  check(index: number): void {
    if (this.queued.has(index)) return;
    this.queued.add(index);
    this.queue.push(index);
    this.running ??= this.drain().catch((e: unknown) => {
      this.failure = e;
    }).finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when every queued piece was checked; rejects when reading the file failed. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
  }

  /** Checks the queue dry with one pooled slab (pieces often complete one at a time: one slab each would be garbage). */
  private drain(): Promise<void> {
    return withSlab(async (buf) => {
      for (let i = this.queue.shift(); i !== undefined; i = this.queue.shift()) {
        const actual = await hashRange(this.file(), this.pieces[i] as ByteRange, this.algorithm, buf);
        this.queued.delete(i);
        this.result(i, actual === this.expected[i], actual);
      }
    });
  }
}
