/**
 * The relay's bounded blob cache: every blob a transfer brought in, least recently used first, and
 * their total size. Past `maxBytes` the least recently used blobs are deleted from the store
 * until the total is back under it. The relay can be asked for any blob of an allowed upstream,
 * not only those of a manifest it holds, so the account is kept per blob (lib/storage/eviction.ts
 * keeps whole manifests, which leaves blobs without a manifest outside the limit). Manifests
 * are small and are not counted. Access order survives a restart through blob mtimes.
 *
 * Deleting a blob someone is reading is harmless on POSIX (the open descriptor keeps it); the
 * cache repository's link stays, and the next request finds the blob missing and transfers it again.
 */
import type { Logger } from '../log/logger.ts';
import type { Storage } from '../storage/storage.ts';
import { TouchThrottle } from '../storage/touch-throttle.ts';

export interface RelayBlobCacheOptions {
  maxBytes: number;
  /** Least time between two mtime updates of one blob on access (default 60 s). */
  touchIntervalMs?: number;
  /** Called after a blob was evicted (to drop what was derived from it). */
  onEvict?: (digest: string) => Promise<void> | void;
  logger?: Logger;
  now?: () => number;
}

export class RelayBlobCache {
  /** digest -> size, in access order: the first key is the least recently used. */
  private readonly entries = new Map<string, number>();
  private total = 0;
  private readonly touches: TouchThrottle;
  private evicting: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly store: Storage, private readonly opts: RelayBlobCacheOptions) {
    this.now = opts.now ?? Date.now;
    this.touches = new TouchThrottle(opts.touchIntervalMs);
  }

  /** The cache of what the store holds now: every blob but manifests, ordered by mtime. */
  static async open(store: Storage, opts: RelayBlobCacheOptions): Promise<RelayBlobCache> {
    const cache = new RelayBlobCache(store, opts);
    const manifests = new Set<string>();
    for (const repo of await store.repositories.listRepositories()) {
      for (const d of await store.repositories.listManifests(repo)) manifests.add(d);
    }
    const found = [];
    for await (const b of store.blobs.list()) if (!manifests.has(b.digest)) found.push(b);
    found.sort((a, b) => a.touchedAt - b.touchedAt);
    for (const b of found) cache.put(b.digest, b.size);
    await cache.evictIfNeeded();
    return cache;
  }

  get totalBytes(): number {
    return this.total;
  }

  get count(): number {
    return this.entries.size;
  }

  has(digest: string): boolean {
    return this.entries.has(digest);
  }

  /** Digests, least recently used first. */
  digests(): string[] {
    return [...this.entries.keys()];
  }

  /** A transfer committed a blob: it is the most recent, and older ones may have to go. */
  async added(digest: string, size: number): Promise<void> {
    this.put(digest, size);
    await this.evictIfNeeded(digest);
  }

  /** A blob was served: it becomes the most recent. Unknown digests (manifests) are ignored. */
  accessed(digest: string): void {
    const size = this.entries.get(digest);
    if (size === undefined) return;
    this.put(digest, size);
    if (this.touches.due(digest, this.now())) void this.store.blobs.touch(digest);
  }

  /**
   * Deletes least recently used blobs while the total is over maxBytes; `keep` (the blob just
   * added) goes last, so a blob larger than the whole cache stays until the next one arrives.
   * Runs one at a time.
   */
  evictIfNeeded(keep?: string): Promise<void> {
    const run = this.evicting.then(() => this.evict(keep));
    this.evicting = run.catch((e: unknown) => this.opts.logger?.warn({ err: e }, 'relay cache eviction failed'));
    return run;
  }

  private put(digest: string, size: number): void {
    const old = this.entries.get(digest);
    if (old !== undefined) {
      this.entries.delete(digest);
      this.total -= old;
    }
    this.entries.set(digest, size);
    this.total += size;
  }

  private oldest(except: string | undefined): string | undefined {
    for (const d of this.entries.keys()) if (d !== except) return d;
    return undefined;
  }

  private async evict(keep: string | undefined): Promise<void> {
    let freed = 0;
    let blobs = 0;
    while (this.total > this.opts.maxBytes) {
      const victim = this.oldest(keep);
      if (victim === undefined) break;
      const size = this.entries.get(victim) ?? 0;
      this.entries.delete(victim);
      this.touches.forget(victim);
      this.total -= size;
      await this.store.blobs.delete(victim);
      await this.opts.onEvict?.(victim);
      freed += size;
      blobs++;
    }
    if (blobs > 0) this.opts.logger?.info({ blobs, bytes: freed, cachedBytes: this.total }, 'relay cache eviction');
  }
}
