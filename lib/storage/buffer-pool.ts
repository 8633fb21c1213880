/**
 * Reusable read buffers for sending files. Allocating a fresh buffer per read costs page faults
 * and leaves garbage that the GC frees late, so memory under many concurrent downloads grows
 * far past what is in flight. Every buffer here is one fixed-size slab, so buffers are reused
 * whatever the crowd (a few readers take several slabs per read, many take one) and memory
 * never fragments into sizes nobody asks for any more.
 */

export interface BufferPoolOptions {
  /** Bytes per slab. */
  slabSize: number;
  /** Most slabs one read may take (few readers read this much at once). */
  maxSlabsPerRead: number;
  /** Bytes all readers together should hold at once; also what the pool keeps idle at most. */
  budget: number;
}

export const DEFAULT_POOL_OPTIONS: BufferPoolOptions = { slabSize: 256 << 10, maxSlabsPerRead: 4, budget: 16 << 20 };

export class BufferPool {
  private readonly idle: Buffer[] = [];

  constructor(readonly opts: BufferPoolOptions = DEFAULT_POOL_OPTIONS) {
    if (!(opts.slabSize > 0) || !isPowerOfTwo(opts.maxSlabsPerRead)) {
      throw new Error('a buffer pool needs a positive slab size and a power of two of slabs per read');
    }
  }

  /**
   * Slabs per read for each of `readers` concurrent readers holding `reads` reads each: the
   * largest power of two that keeps them all within the budget, at least one.
   */
  slabsPerRead(readers: number, reads = 2): number {
    const share = this.opts.budget / (Math.max(1, readers) * reads * this.opts.slabSize);
    let slabs = this.opts.maxSlabsPerRead;
    while (slabs > 1 && slabs > share) slabs /= 2;
    return slabs;
  }

  /** One slab; its content is garbage. */
  acquire(): Buffer {
    // Slow: its own memory, never a slice of Node's shared pool, so it can be kept and reused.
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.opts.slabSize);
  }

  /**
   * Gives a slab back; the caller must not touch it afterwards. A slab never given back (a
   * write that failed) is simply left to the GC: the pool counts only what it holds.
   */
  release(buf: Buffer): void {
    if (buf.length !== this.opts.slabSize || buf.byteOffset !== 0) return;
    if ((this.idle.length + 1) * this.opts.slabSize > this.opts.budget) return;
    this.idle.push(buf);
  }

  /** Bytes held idle. */
  get idleBytes(): number {
    return this.idle.length * this.opts.slabSize;
  }
}

/**
 * The process's pool of slabs for files sent to clients (send-file.ts). A fresh buffer per read,
 * ~1 GB of them for a 423 MiB pull through relays, was the larger part of the garbage that raised
 * the mirror's peak RSS.
 */
export const slabPool = new BufferPool();

/**
 * The pool for bytes read back to be hashed (lib/transfer: prefix, pieces, repair). Its slabs are
 * 1 MiB, not the sending pool's 256 KiB: on the S3 backend each read of bytes no longer in memory
 * is one ranged GET, and a successor re-hashing a resumed prefix or a whole-blob check reads it all
 * (4x the GETs at 256 KiB). One slab per read, few readers at once: 8 MiB kept at most.
 */
export const readBackPool = new BufferPool({ slabSize: 1 << 20, maxSlabsPerRead: 1, budget: 8 << 20 });

/** Runs `use` with one slab of `pool`, given back once `use` settled (its reads are done by then). */
export async function withSlab<T>(use: (slab: Buffer) => Promise<T>, pool: BufferPool = readBackPool): Promise<T> {
  const slab = pool.acquire();
  try {
    return await use(slab);
  } finally {
    pool.release(slab);
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
