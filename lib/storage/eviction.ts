/**
 * The pull-through cache limit (cache.maxBytes): LRU eviction of cached content by last access.
 *
 * Accounting is per blob (an lru-cache whose sizes sum to the cached bytes, in access order), but
 * eviction removes whole cached manifests: the least recently used blob names the manifests that
 * use it (in repositories of origin 'cache'); those manifests (and any index or referrer of them
 * in the same repository) lose their link and tags, then their blobs that no remaining manifest
 * uses are deleted. So a cached manifest never survives a blob of its own.
 *
 * Pinned content is never touched: everything reachable from a manifest of a local repository,
 * and every blob linked into one (a push in progress). A repository without an origin counts as
 * local. Access order survives restarts through blob mtimes (BlobStore.touch).
 *
 * Eviction stops at lowWaterRatio * maxBytes, so the rescan it starts with (repository folders,
 * new manifests only) happens once per batch of fills, not after every one.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log/logger.ts';
import type { Storage } from './storage.ts';
import { readManifestRefs, type ManifestRefs } from './references.ts';

export interface CacheAccountingOptions {
  maxBytes: number;
  /** Eviction frees down to this fraction of maxBytes (default 0.9). */
  lowWaterRatio?: number;
  /** Least time between two mtime updates of one blob on access (default 60 s). */
  touchIntervalMs?: number;
  logger?: Logger;
  now?: () => number;
}

export interface EvictionReport {
  /** repository@digest of each manifest evicted. */
  evictedManifests: string[];
  deletedBlobs: number;
  freedBytes: number;
  /** Cached bytes after the run. */
  totalBytes: number;
}

interface CachedManifest {
  repo: string;
  digest: string;
  refs: ManifestRefs;
  subject?: string;
}

const key = (repo: string, digest: string): string => `${repo}@${digest}`;

export class CacheAccounting {
  /** Cached blob digest -> size, least recently used first; calculatedSize is the cached total. */
  private readonly lru = new LRUCache<string, number>({ maxSize: Number.MAX_SAFE_INTEGER, sizeCalculation: (size) => Math.max(1, size) });
  private manifests = new Map<string, CachedManifest>();
  /** Digest -> keys of the cached manifests that are it or use it. */
  private usedBy = new Map<string, Set<string>>();
  private pinned = new Set<string>();
  private readonly refsCache = new Map<string, ManifestRefs | null>();
  private readonly lastTouch = new Map<string, number>();
  private running: Promise<EvictionReport> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly store: Storage,
    private readonly opts: CacheAccountingOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Builds the accounting from the store (blob mtimes as last access). */
  static async open(store: Storage, opts: CacheAccountingOptions): Promise<CacheAccounting> {
    const c = new CacheAccounting(store, opts);
    await c.rebuild();
    return c;
  }

  get totalBytes(): number {
    return this.lru.calculatedSize;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  async rebuild(): Promise<void> {
    this.lru.clear();
    await this.rescan();
    const found: Array<{ digest: string; size: number; touchedAt: number }> = [];
    for (const digest of this.usedBy.keys()) {
      if (this.pinned.has(digest)) continue;
      const s = await this.store.blobs.stat(digest);
      if (s) found.push({ digest, size: s.size, touchedAt: s.touchedAt });
    }
    found.sort((a, b) => a.touchedAt - b.touchedAt);
    for (const f of found) this.lru.set(f.digest, f.size);
  }

  /** A blob or manifest was served: it and, for a manifest, its blobs become most recent. */
  recordAccess(digest: string): void {
    if (!this.lru.has(digest)) return;
    this.lru.get(digest);
    const refs = this.refsCache.get(digest);
    for (const b of refs?.blobs ?? []) this.lru.get(b.digest);
    const now = this.now();
    if (now - (this.lastTouch.get(digest) ?? 0) >= (this.opts.touchIntervalMs ?? 60_000)) {
      this.lastTouch.set(digest, now);
      void this.store.blobs.touch(digest);
    }
  }

  /** A pull-through fill committed a blob (or a manifest) to the store. */
  recordAdded(digest: string, size: number): void {
    if (this.pinned.has(digest)) return;
    this.lru.set(digest, size);
  }

  /** Evicts least recently used cached manifests while the cache is over maxBytes; one run at a time. */
  evictIfNeeded(): Promise<EvictionReport> {
    if (this.running) return this.running;
    if (this.totalBytes <= this.opts.maxBytes) return Promise.resolve(this.emptyReport());
    this.running = this.evict().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private emptyReport(): EvictionReport {
    return { evictedManifests: [], deletedBlobs: 0, freedBytes: 0, totalBytes: this.totalBytes };
  }

  private async evict(): Promise<EvictionReport> {
    const report = this.emptyReport();
    await this.rescan();
    for (const digest of [...this.lru.keys()]) {
      if (this.pinned.has(digest)) this.lru.delete(digest);
    }
    await this.accountUnseen();
    const lowWater = Math.floor(this.opts.maxBytes * (this.opts.lowWaterRatio ?? 0.9));
    while (this.totalBytes > lowWater) {
      const victim = this.lru.rkeys().next().value;
      if (victim === undefined) break;
      const users = this.usedBy.get(victim);
      if (!users || users.size === 0) {
        // Used by no cached manifest: unreferenced content is gc's to remove, not the cache's.
        this.lru.delete(victim);
        continue;
      }
      await this.evictManifests(this.dependents(users), report);
      // A blob still linked elsewhere (another cache repository) must not stall the loop.
      if (this.lru.has(victim) && (this.usedBy.get(victim)?.size ?? 0) === 0) this.lru.delete(victim);
    }
    report.totalBytes = this.totalBytes;
    if (report.evictedManifests.length > 0) {
      this.opts.logger?.info({ evicted: report.evictedManifests.length, deletedBlobs: report.deletedBlobs, bytes: report.freedBytes, cachedBytes: report.totalBytes }, 'cache eviction');
    }
    return report;
  }

  /** The manifests, plus every cached index or referrer in their repository that depends on them. */
  private dependents(start: Iterable<string>): Set<string> {
    const out = new Set(start);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [k, m] of this.manifests) {
        if (out.has(k)) continue;
        const needs = [...m.refs.children.map((c) => c.digest), ...(m.subject ? [m.subject] : [])];
        if (needs.some((d) => out.has(key(m.repo, d)))) {
          out.add(k);
          grew = true;
        }
      }
    }
    return out;
  }

  private async evictManifests(keys: Set<string>, report: EvictionReport): Promise<void> {
    const candidates = new Map<string, Set<string>>();
    const note = (digest: string, repo: string): void => {
      const repos = candidates.get(digest) ?? new Set<string>();
      repos.add(repo);
      candidates.set(digest, repos);
    };
    for (const k of keys) {
      const m = this.manifests.get(k);
      if (!m) continue;
      await this.store.repositories.unlinkManifest(m.repo, m.digest);
      this.forget(k, m);
      report.evictedManifests.push(k);
      note(m.digest, m.repo);
      for (const b of m.refs.blobs) note(b.digest, m.repo);
    }
    for (const [digest, repos] of candidates) {
      if ((this.usedBy.get(digest)?.size ?? 0) > 0) continue;
      if (!this.pinned.has(digest)) {
        const s = await this.store.blobs.stat(digest);
        if (s && (await this.store.blobs.delete(digest))) {
          report.deletedBlobs++;
          report.freedBytes += s.size;
        }
      }
      this.lru.delete(digest);
      for (const repo of repos) await this.store.repositories.unlinkBlob(repo, digest);
    }
  }

  private remember(k: string, m: CachedManifest): void {
    this.manifests.set(k, m);
    for (const d of [m.digest, ...m.refs.blobs.map((b) => b.digest)]) {
      const set = this.usedBy.get(d) ?? new Set<string>();
      set.add(k);
      this.usedBy.set(d, set);
    }
  }

  private forget(k: string, m: CachedManifest): void {
    this.manifests.delete(k);
    for (const d of [m.digest, ...m.refs.blobs.map((b) => b.digest)]) {
      const set = this.usedBy.get(d);
      set?.delete(k);
      if (set && set.size === 0) this.usedBy.delete(d);
    }
  }

  private async refsOf(digest: string): Promise<ManifestRefs | null> {
    if (this.refsCache.has(digest)) return this.refsCache.get(digest) ?? null;
    const refs = (await readManifestRefs(this.store, digest)) ?? null;
    // Manifests are immutable; only a missing one may appear later, so only successes are kept.
    if (refs) this.refsCache.set(digest, refs);
    return refs;
  }

  /** Re-reads which manifests are cached and what is pinned; parses only manifests not seen before. */
  private async rescan(): Promise<void> {
    const manifests = new Map<string, CachedManifest>();
    const pinned = new Set<string>();
    for (const repo of await this.store.repositories.listRepositories()) {
      const cached = (await this.store.repositories.getOrigin(repo)) === 'cache';
      for (const digest of await this.store.repositories.listManifests(repo)) {
        const refs = await this.refsOf(digest);
        if (!cached) {
          pinned.add(digest);
          for (const b of refs?.blobs ?? []) pinned.add(b.digest);
          continue;
        }
        if (!refs) continue;
        const k = key(repo, digest);
        const known = this.manifests.get(k);
        const subject = known ? known.subject : (await this.store.repositories.getManifestMeta(repo, digest))?.subject;
        manifests.set(k, { repo, digest, refs, ...(subject ? { subject } : {}) });
      }
      if (!cached) for (const b of await this.store.repositories.listBlobs(repo)) pinned.add(b);
    }
    this.manifests = new Map();
    this.usedBy = new Map();
    this.pinned = pinned;
    for (const [k, m] of manifests) this.remember(k, m);
  }

  /** Cached blobs present on disk that no fill reported (e.g. a manifest stored by the mirror): counted as just used. */
  private async accountUnseen(): Promise<void> {
    for (const digest of this.usedBy.keys()) {
      if (this.pinned.has(digest) || this.lru.has(digest)) continue;
      const s = await this.store.blobs.stat(digest);
      if (s) this.lru.set(digest, s.size);
    }
  }
}

/**
 * What the mirror calls after each pull-through fill (blob or manifest committed): accounts for
 * it and evicts when over the limit. Without a cache limit (no accounting), does nothing.
 */
export async function afterFill(cache: CacheAccounting | undefined, digest: string, size: number): Promise<EvictionReport | undefined> {
  if (!cache) return undefined;
  cache.recordAdded(digest, size);
  return cache.evictIfNeeded();
}
