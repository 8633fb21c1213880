/**
 * Bytes and count of blobs in the store, and bytes of unfinished transfers. Listing a large store
 * costs seconds, so the figure is computed on demand, at most once per `ttlMs`, and concurrent
 * askers share one walk.
 */
import type { Storage } from '../storage/storage.ts';

export interface StoreSizeFigures {
  bytes: number;
  blobs: number;
  /** Bytes of unfinished pull-through transfers. */
  partialBytes: number;
  computedAt: number;
}

export class StoreSize {
  private cached: StoreSizeFigures | undefined;
  private walking: Promise<StoreSizeFigures> | undefined;

  constructor(private readonly storage: Pick<Storage, 'blobs' | 'partials'>, private readonly ttlMs = 30_000) {}

  /** The last figures, recomputed when older than the TTL. */
  get(now = Date.now()): Promise<StoreSizeFigures> {
    if (this.cached && now - this.cached.computedAt < this.ttlMs) return Promise.resolve(this.cached);
    this.walking ??= this.walk().then((f) => {
      this.cached = f;
      return f;
    }).finally(() => {
      this.walking = undefined;
    });
    return this.walking;
  }

  /** The cached figures without waiting (undefined before the first walk). */
  peek(): StoreSizeFigures | undefined {
    return this.cached;
  }

  private async walk(): Promise<StoreSizeFigures> {
    let bytes = 0;
    let blobs = 0;
    for await (const b of this.storage.blobs.list()) {
      bytes += b.size;
      blobs++;
    }
    const partial = await this.storage.partials.usage();
    return { bytes, blobs, partialBytes: partial.bytes, computedAt: Date.now() };
  }
}
