/**
 * The digest over the contiguous prefix of a partial blob as it grows. Bytes written exactly at the
 * frontier are hashed from memory as they arrive; bytes that landed ahead of it (later chunks)
 * are read back from storage once the gap before them is filled. After a restart the whole
 * journaled prefix is re-hashed from disk, which is cheaper than persisting hash state.
 */
import type { PositionalReader } from '../storage/partial-blobs.ts';
import { withSlab } from '../storage/buffer-pool.ts';
import type { Hash } from 'node:crypto';
import { newHash, type Algorithm } from '../oci/digest.ts';
import type { RangeSet } from './range-set.ts';

export class PrefixHasher {
  /** Bytes of the prefix hashed so far: all on disk, in order. */
  hashed = 0;
  private hash: Hash;
  private draining: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly stored: PositionalReader,
    private readonly written: RangeSet,
    private readonly algorithm: Algorithm,
    private readonly onAdvance: (hashed: number) => void,
    /** Given the bytes hashed, in order, as they are (buffers are reused after: copy to keep). */
    private readonly tap?: (pos: number, bytes: Uint8Array) => void,
  ) {
    this.hash = newHash(algorithm);
  }

  /** Call once `buf` is written at `start` and added to the written set. */
  wrote(start: number, buf: Uint8Array): void {
    const end = start + buf.length;
    if (!this.draining && start <= this.hashed && end > this.hashed) {
      const bytes = buf.subarray(this.hashed - start);
      this.hash.update(bytes);
      this.tap?.(this.hashed, bytes);
      this.hashed = end;
      this.onAdvance(end);
    }
    this.catchUp();
  }

  /** Starts reading back from disk whatever is written contiguously past the frontier. */
  catchUp(): void {
    if (this.draining || this.failure || this.written.coveredEnd(this.hashed) <= this.hashed) return;
    this.draining = this.drain()
      .catch((e: unknown) => {
        this.failure = e;
      })
      .finally(() => {
        this.draining = undefined;
        // Writes that landed while the read-back was finishing were not hashed from memory.
        this.catchUp();
      });
  }

  /** Resolves when no read-back is running; rejects if one failed. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
    if (this.failure) throw this.failure;
  }

  /** "<algorithm>:<hex>" of the prefix; finalises this hash (reset() to start again). */
  digest(): string {
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }

  async reset(): Promise<void> {
    await this.idle();
    this.hash = newHash(this.algorithm);
    this.hashed = 0;
  }

  /** Reads back into one pooled slab until the frontier meets a gap. */
  private drain(): Promise<void> {
    return withSlab(async (buf) => {
      for (;;) {
        const end = this.written.coveredEnd(this.hashed);
        if (end <= this.hashed) return;
        const n = Math.min(buf.length, end - this.hashed);
        const bytesRead = await this.stored.read(this.hashed, buf.subarray(0, n));
        if (bytesRead === 0) throw new Error(`short read of the partial blob at ${this.hashed}`);
        this.hash.update(buf.subarray(0, bytesRead));
        this.tap?.(this.hashed, buf.subarray(0, bytesRead));
        this.hashed += bytesRead;
        this.onAdvance(this.hashed);
      }
    });
  }
}
