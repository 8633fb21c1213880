/**
 * Reusable read buffers for sending files. Allocating a fresh buffer per read costs page faults
 * and leaves garbage that the GC frees late, so memory under many concurrent downloads grows
 * far past what is in flight. Buffers come back here once the socket has taken their bytes.
 */

export interface BufferPoolOptions {
  /** Largest chunk handed out (few readers get this). */
  maxChunk: number;
  /** Smallest chunk handed out (however many readers). */
  minChunk: number;
  /** Bytes all readers together should hold at once; also what the free lists may keep. */
  budget: number;
}

export const DEFAULT_POOL_OPTIONS: BufferPoolOptions = { maxChunk: 1 << 20, minChunk: 64 << 10, budget: 16 << 20 };

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  constructor(readonly opts: BufferPoolOptions = DEFAULT_POOL_OPTIONS) {
    if (!isPowerOfTwo(opts.minChunk) || !isPowerOfTwo(opts.maxChunk) || opts.minChunk > opts.maxChunk) {
      throw new Error('buffer pool chunks must be powers of two with minChunk <= maxChunk');
    }
  }

  /**
   * The chunk size for each of `readers` concurrent readers holding `perReader` buffers each:
   * the largest power of two that keeps them all within the budget, clamped to min..max.
   */
  chunkSize(readers: number, perReader = 2): number {
    const share = this.opts.budget / (Math.max(1, readers) * perReader);
    let size = this.opts.maxChunk;
    while (size > this.opts.minChunk && size > share) size /= 2;
    return size;
  }

  /** A buffer of exactly `size` bytes (a power of two); its content is garbage. */
  acquire(size: number): Buffer {
    const buf = this.free.get(size)?.pop();
    if (buf) {
      this.freeBytes -= size;
      return buf;
    }
    // Slow: its own memory, never a slice of Node's shared pool, so it can be kept and reused.
    return Buffer.allocUnsafeSlow(size);
  }

  /**
   * Gives a buffer back; the caller must not touch it afterwards. A buffer never given back
   * (a write that failed) is simply left to the GC: the pool counts only what it holds.
   */
  release(buf: Buffer): void {
    const size = buf.length;
    if (!isPowerOfTwo(size) || size < this.opts.minChunk || size > this.opts.maxChunk) return;
    // Idle buffers of other sizes (the crowd changed) make way for this one.
    for (const [other, list] of this.free) {
      if (other === size) continue;
      while (list.length > 0 && this.freeBytes + size > this.opts.budget) {
        list.pop();
        this.freeBytes -= other;
      }
    }
    if (this.freeBytes + size > this.opts.budget) return;
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buf);
    this.freeBytes += size;
  }

  /** Bytes held in the free lists. */
  get idleBytes(): number {
    return this.freeBytes;
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
