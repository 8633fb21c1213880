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
 * new manifests only) happens once per batch of fills, not after every one. Blobs are deleted
 * only after a second rescan, once every victim's manifests are unlinked: a manifest linked
 * meanwhile (a fill, a push, another replica) keeps the blobs it uses.
 *
 * On a store shared by replicas (`shared`: an S3 bucket), each eviction first takes the state of
 * the whole cluster from the store: the cached bytes from the blobs there (every replica's fills,
 * minus what another replica evicted), the order from their touch records (every replica's
 * accesses; a blob is as recent as the latest of itself and the manifests that use it). Every
 * access is touched (at most once per touchIntervalMs per blob and replica), also of a blob
 * another replica filled. Two replicas evicting at once pick the same victims from the same
 * order; both unlink and delete the same things, and the rescan before deleting makes the one
 * that unlinks last delete a blob two victims shared.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log/logger.ts';
import type { Storage } from './storage.ts';
import { readManifestRefs, type ManifestRefs } from './references.ts';
import { TouchThrottle } from './touch-throttle.ts';

export interface CacheAccountingOptions {
  maxBytes: number;
  /** Eviction frees down to this fraction of maxBytes (default 0.9). */
  lowWaterRatio?: number;
  /** Least time between two mtime updates of one blob on access (default 60 s). */
  touchIntervalMs?: number;
  /** The store is shared by replicas: each eviction takes the cached bytes and the access order from it. */
  shared?: boolean;
  /** Shared store: least time between two looks at the cluster's cached bytes after fills (default 10 s). */
  syncIntervalMs?: number;
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
  /** Cached blob digest -> size and last access here (ms), least recently used first; calculatedSize is the cached total. */
  private readonly lru = new LRUCache<string, Cached>({ maxSize: Number.MAX_SAFE_INTEGER, sizeCalculation: (c) => Math.max(1, c.size) });
  private manifests = new Map<string, CachedManifest>();
  /** Digest -> keys of the cached manifests that are it or use it. */
  private usedBy = new Map<string, Set<string>>();
  private pinned = new Set<string>();
  private readonly refsCache = new Map<string, ManifestRefs | null>();
  private readonly touches: TouchThrottle;
  private running: Promise<EvictionReport> | undefined;
  /** When the shared store's state was last read (now() ms). */
  private syncedAt = -Infinity;
  private readonly now: () => number;

  constructor(
    private readonly store: Storage,
    private readonly opts: CacheAccountingOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.touches = new TouchThrottle(opts.touchIntervalMs);
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
    if (this.opts.shared) {
      await this.syncShared();
      return;
    }
    await this.rescan();
    const found: Array<{ digest: string; size: number; touchedAt: number }> = [];
    for (const digest of this.usedBy.keys()) {
      if (this.pinned.has(digest)) continue;
      const s = await this.store.blobs.stat(digest);
      if (s) found.push({ digest, size: s.size, touchedAt: s.touchedAt });
    }
    found.sort((a, b) => a.touchedAt - b.touchedAt);
    for (const f of found) this.lru.set(f.digest, { size: f.size, at: f.touchedAt });
  }

  /** A blob or manifest was served: it and, for a manifest, its blobs become most recent. */
  recordAccess(digest: string): void {
    const now = this.now();
    const known = this.lru.get(digest);
    // Shared store: another replica may have filled it; the touch tells every replica's eviction.
    if (!known && !this.opts.shared) return;
    if (known) known.at = now;
    const refs = this.refsCache.get(digest);
    for (const b of refs?.blobs ?? []) {
      const blob = this.lru.get(b.digest);
      if (blob) blob.at = now;
    }
    if (this.touches.due(digest, now)) void this.store.blobs.touch(digest);
  }

  /** A pull-through fill committed a blob (or a manifest) to the store. */
  recordAdded(digest: string, size: number): void {
    if (this.pinned.has(digest)) return;
    this.lru.set(digest, { size, at: this.now() });
  }

  /**
   * Evicts least recently used cached manifests while the cache is over maxBytes; one run at a
   * time. On a shared store it also looks at the cluster's cached bytes every syncIntervalMs.
   */
  evictIfNeeded(): Promise<EvictionReport> {
    if (this.running) return this.running;
    const stale = this.opts.shared === true && this.now() - this.syncedAt >= (this.opts.syncIntervalMs ?? 10_000);
    if (this.totalBytes <= this.opts.maxBytes && !stale) return Promise.resolve(this.emptyReport());
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
    if (this.opts.shared) {
      await this.syncShared();
    } else {
      await this.rescan();
      for (const digest of [...this.lru.keys()]) {
        if (this.pinned.has(digest)) this.lru.delete(digest);
      }
      await this.accountUnseen();
    }
    const lowWater = Math.floor(this.opts.maxBytes * (this.opts.lowWaterRatio ?? 0.9));
    /** Blobs of unlinked manifests -> their size and the repositories whose manifests used them. */
    const candidates = new Map<string, { size: number; repos: Set<string> }>();
    // A shared store's look may find the cluster under the limit: nothing to evict then.
    const over = this.totalBytes > this.opts.maxBytes;
    while (over && this.totalBytes > lowWater) {
      const victim = this.lru.rkeys().next().value;
      if (victim === undefined) break;
      const users = this.usedBy.get(victim);
      if (!users || users.size === 0) {
        // Used by no cached manifest: unreferenced content is gc's to remove, not the cache's.
        this.lru.delete(victim);
        continue;
      }
      await this.unlinkManifests(this.dependents(users), candidates, report);
      // A blob still linked elsewhere (another cache repository) must not stall the loop.
      if (this.lru.has(victim) && (this.usedBy.get(victim)?.size ?? 0) === 0) this.lru.delete(victim);
    }
    if (candidates.size > 0) await this.deleteUnused(candidates, report);
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

  /** Unlinks the manifests (tags with them); their blobs no other known manifest uses leave the count and become candidates. */
  private async unlinkManifests(keys: Set<string>, candidates: Map<string, { size: number; repos: Set<string> }>, report: EvictionReport): Promise<void> {
    const noted = new Map<string, Set<string>>();
    const note = (digest: string, repo: string): void => {
      const repos = noted.get(digest) ?? new Set<string>();
      repos.add(repo);
      noted.set(digest, repos);
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
    for (const [digest, repos] of noted) {
      if ((this.usedBy.get(digest)?.size ?? 0) > 0) continue;
      const c = candidates.get(digest) ?? { size: this.lru.peek(digest)?.size ?? 0, repos: new Set<string>() };
      for (const r of repos) c.repos.add(r);
      candidates.set(digest, c);
      this.lru.delete(digest);
    }
  }

  /**
   * Deletes the candidates no manifest uses once the store is read again: one linked since the
   * first rescan (a fill, a push, another replica) keeps its blobs, which count again.
   */
  private async deleteUnused(candidates: Map<string, { size: number; repos: Set<string> }>, report: EvictionReport): Promise<void> {
    await this.rescan();
    for (const [digest, { size, repos }] of candidates) {
      if ((this.usedBy.get(digest)?.size ?? 0) > 0) {
        if (!this.pinned.has(digest) && size > 0) this.lru.set(digest, { size, at: this.now() });
        continue;
      }
      if (!this.pinned.has(digest)) {
        const s = await this.store.blobs.stat(digest);
        if (s && (await this.store.blobs.delete(digest))) {
          report.deletedBlobs++;
          report.freedBytes += s.size;
        }
      }
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
      if (s) this.lru.set(digest, { size: s.size, at: this.now() });
    }
  }

  /**
   * Shared store: the cached blobs are those in the store that a cached manifest uses and nothing
   * pins (one listing of the blobs with their touch times), each as recent as the latest access to
   * it or to a manifest using it, by any replica (its touch) or here.
   */
  private async syncShared(): Promise<void> {
    await this.rescan();
    const touched = new Map<string, number>();
    const sizes = new Map<string, number>();
    for await (const b of this.store.blobs.list()) {
      if (!this.usedBy.has(b.digest) || this.pinned.has(b.digest)) continue;
      touched.set(b.digest, Math.max(b.touchedAt, this.lru.peek(b.digest)?.at ?? 0));
      sizes.set(b.digest, b.size);
    }
    const recency = (digest: string): number => {
      let at = touched.get(digest) ?? 0;
      for (const k of this.usedBy.get(digest) ?? []) {
        const m = this.manifests.get(k);
        if (m) at = Math.max(at, touched.get(m.digest) ?? 0);
      }
      return at;
    };
    const order = [...sizes.keys()].map((digest) => ({ digest, at: recency(digest) })).sort((a, b) => a.at - b.at);
    this.lru.clear();
    for (const { digest, at } of order) this.lru.set(digest, { size: sizes.get(digest) ?? 0, at });
    this.syncedAt = this.now();
  }
}

interface Cached {
  size: number;
  /** Last access known here (ms since the epoch, by now()). */
  at: number;
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
