/**
 * The mirror: local content first (after rewrite rules), then pull-through from the routed
 * upstream, cached under "<upstream key>/<upstream repository>" with origin "cache".
 * Pushes go to the local repository the pushed name routes to, so they pull back under it.
 */
import type { Readable } from 'node:stream';
import { RegistryError, isNotFoundCode, isRegistryError } from '../oci/errors.ts';
import { parseReadReference, parseReference, requireName } from '../oci/names.ts';
import { requireDigest } from '../oci/digest.ts';
import { parseManifest } from '../oci/manifest.ts';
import type { Logger } from '../log/logger.ts';
import { catalogNames, requestedTags } from '../rewrite/catalog.ts';
import { route as routeOf, type Route, type RoutingConfig } from '../rewrite/route.ts';
import type { LocalRegistry } from '../registry/local.ts';
import { paginate } from '../registry/paginate.ts';
import type { BlobHandle, ManifestResult, Page, PageResult, ReferrersResult, RegistryBackend, RequestContext } from '../registry/types.ts';
import type { ByteRange, Storage, UploadState } from '../storage/storage.ts';
import type { Transfers, TransferHandle } from './transfers.ts';
import { DescriptorSizes } from './descriptor-sizes.ts';
import type { UpstreamPort } from './upstream-port.ts';
import type { Prefetcher } from './prefetch.ts';
import { noMirrorMetrics, type MirrorMetrics } from '../metrics/mirror-metrics.ts';
import { UpstreamNotFoundError } from '../upstream/errors.ts';

export interface MirrorOptions {
  local: LocalRegistry;
  /** The storage under local: cache repositories' links, tag checks, whether a blob is held. */
  storage: Storage;
  routing: RoutingConfig;
  upstreams: ReadonlyMap<string, UpstreamPort>;
  transfers: Transfers;
  logger: Logger;
  /** Cached tags are revalidated upstream after this long. */
  manifestTtlMs: number;
  /** How long a revalidation may take before the cached tag is served anyway. */
  revalidateTimeoutMs?: number;
  /** Called when pull-through content is read or added (cache accounting). */
  onCacheAccess?: (digest: string) => void;
  /** Cache hit and miss counters. */
  metrics?: MirrorMetrics;
  /**
   * Whether a HEAD of a blob not held starts its fetch. The mirror says no (docker push HEADs
   * every layer it uploads; that must not cross the slow link); the relay says yes (the mirror's
   * HEAD is the start of a pull, and the relay's upstream side is fast).
   */
  transferOnHead?: boolean;
  /** Fetches an image's blobs ahead when its manifest is served (the mirror; not the relay). */
  prefetch?: Pick<Prefetcher, 'manifestServed' | 'asked'>;
  /** Restricts where names route (the relay's allow policy, lib/relay/relay-backend.ts). */
  routePolicy?: RoutePolicy;
}

/** Returns the route to follow for a name, narrowed, or throws (DENIED) where it may not go. */
export type RoutePolicy = (r: Route, name: string) => Route;

export class MirrorRegistry implements RegistryBackend {
  private readonly manifestFlights = new Map<string, Promise<ManifestResult>>();
  /** Blob sizes from the manifests served per cache repository: a transfer needs no HEAD for them. */
  private readonly sizes = new DescriptorSizes();

  constructor(private readonly opts: MirrorOptions) {}

  private get local(): LocalRegistry {
    return this.opts.local;
  }

  private get storage(): Storage {
    return this.opts.storage;
  }

  private get metrics(): MirrorMetrics {
    return this.opts.metrics ?? noMirrorMetrics;
  }

  /** Counts a manifest served from the store. */
  private manifestHit<T>(m: T): T {
    this.metrics.cacheHit('manifest');
    return m;
  }

  route(name: string, reference?: string, ctx?: RequestContext): Route {
    const r = routeOf(this.opts.routing, name, reference, ctx?.ns);
    return this.opts.routePolicy ? this.opts.routePolicy(r, name) : r;
  }

  /** The repository that caches an upstream repository. */
  static cacheName(upstream: string, repository: string): string {
    return requireName(`${upstream}/${repository}`);
  }

  // --- manifests -----------------------------------------------------------------------------

  async getManifest(name: string, reference: string, ctx?: RequestContext): Promise<ManifestResult> {
    parseReadReference(requireName(name), reference);
    const r = this.route(name, reference, ctx);
    const ref = r.digest ?? r.tag ?? reference;
    if (r.local !== undefined) {
      const hit = await this.tryLocal(() => this.local.getManifest(r.local!, ref), 'MANIFEST_UNKNOWN');
      if (hit) return this.manifestHit(hit);
    }
    if (!r.upstream) throw this.unknown(r, 'MANIFEST_UNKNOWN', `manifest unknown: ${name}:${reference}`);
    // One upstream round trip per manifest however many clients ask at once (a deploy starts
    // the same image on many hosts together).
    const key = `${r.upstream.name}/${r.upstream.repository}:${ref}`;
    let flight = this.manifestFlights.get(key);
    if (!flight) {
      flight = this.pullManifest(r.upstream.name, r.upstream.repository, ref).finally(() => this.manifestFlights.delete(key));
      this.manifestFlights.set(key, flight);
    }
    const result = await flight;
    this.sizes.learn(result.name, result.bytes, result.mediaType);
    // The client's next requests are this image's blobs: start them now (prefetch.ts).
    this.opts.prefetch?.manifestServed({ upstreamKey: r.upstream.name, upstream: this.upstream(r.upstream.name), repository: r.upstream.repository, cache: result.name, bytes: result.bytes, mediaType: result.mediaType });
    return result;
  }

  private async pullManifest(upstreamKey: string, repository: string, reference: string): Promise<ManifestResult> {
    const cache = MirrorRegistry.cacheName(upstreamKey, repository);
    const ref = parseReference(reference);
    const upstream = this.upstream(upstreamKey);
    const log = this.opts.logger.child({ upstream: upstreamKey, repository, reference });
    // A tag is read once (with when it was checked), its manifest then by digest; the check is
    // written over that very read (a tag set again meanwhile is not marked checked).
    const tag = ref.kind === 'tag' ? await this.storage.repositories.readTag(cache, ref.tag) : undefined;
    const held = ref.kind === 'digest' ? reference : tag?.digest;
    const cached = held === undefined ? undefined : await this.tryLocal(() => this.local.getManifest(cache, held), 'MANIFEST_UNKNOWN');
    if (cached) this.opts.onCacheAccess?.(cached.digest);
    if (cached && ref.kind === 'digest') return this.manifestHit(cached);
    if (cached && tag && ref.kind === 'tag') {
      if (Date.now() - tag.checkedAt < this.opts.manifestTtlMs) return this.manifestHit(cached);
      try {
        const head = await withTimeout(this.opts.revalidateTimeoutMs ?? 10_000, (signal) => upstream.headManifest(repository, reference, signal));
        if (head === undefined) {
          log.warn('tag is gone upstream; serving the cached manifest');
          return this.manifestHit(cached);
        }
        if (head.digest === cached.digest) {
          await this.storage.repositories.markTagChecked(cache, ref.tag, tag);
          return this.manifestHit(cached);
        }
        log.info({ digest: head.digest, previous: cached.digest }, 'tag moved upstream');
      } catch (e) {
        log.warn({ err: errText(e) }, 'upstream unreachable; serving the cached manifest');
        return this.manifestHit(cached);
      }
    }
    let fetched;
    try {
      fetched = await upstream.getManifest(repository, reference);
    } catch (e) {
      if (cached) {
        log.warn({ err: errText(e) }, 'upstream failed; serving the cached manifest');
        return this.manifestHit(cached);
      }
      throw e;
    }
    this.metrics.cacheMiss('manifest');
    // The blobs go on the link now, not once the manifest is stored (four writes: 0.1-0.35 s of
    // the link idle on a loaded machine, small-docker); getManifest tells the prefetch again after.
    this.opts.prefetch?.manifestServed({ upstreamKey, upstream, repository, cache, bytes: fetched.bytes, mediaType: fetched.mediaType });
    await this.local.storeManifest(cache, reference, fetched.bytes, fetched.mediaType, 'cache');
    log.info({ digest: fetched.digest, bytes: fetched.bytes.length }, 'manifest cached');
    this.opts.onCacheAccess?.(fetched.digest);
    return { name: cache, digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.bytes.length, bytes: fetched.bytes };
  }

  // --- blobs -----------------------------------------------------------------------------------

  /**
   * A blob is served under a name only if a repository of that name holds it (its local
   * repository, or its upstream's cache repository) or the name's upstream confirms it. Holding
   * the bytes for some other repository is not enough: a pushed blob stays private to its
   * repository, and a deleted one stays deleted.
   */
  async getBlob(name: string, digest: string, ctx?: RequestContext): Promise<BlobHandle> {
    requireDigest(digest);
    const r = this.route(name, undefined, ctx);
    if (r.local !== undefined) {
      const hit = await this.tryLocal(() => this.local.getBlob(r.local!, digest), 'BLOB_UNKNOWN');
      if (hit) {
        this.metrics.cacheHit('blob');
        return hit;
      }
    }
    if (!r.upstream) throw this.unknown(r, 'BLOB_UNKNOWN', `blob unknown: ${digest}`);
    // A blob a prefetch fetched for this client is still a miss: the upstream was asked for it.
    const fetchedAhead = !ctx?.head && (this.opts.prefetch?.asked(digest) ?? false);
    const cache = MirrorRegistry.cacheName(r.upstream.name, r.upstream.repository);
    const cached = await this.tryLocal(() => this.local.getBlob(cache, digest), 'BLOB_UNKNOWN');
    if (cached) {
      if (fetchedAhead) this.metrics.cacheMiss('blob');
      else this.metrics.cacheHit('blob');
      this.opts.onCacheAccess?.(digest);
      return cached;
    }
    if (ctx?.head && !this.opts.transferOnHead) {
      // Only a transfer for this very repository answers: asking the upstream would cross the link.
      const running = this.opts.transfers.get(digest);
      if (running?.repository !== cache) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest} (not held; a GET fetches it upstream)`, { digest });
      return this.readerHandle(running);
    }
    return this.upstreamHandle(r.upstream.name, r.upstream.repository, cache, digest);
  }

  /** A blob just found held (with this size), linked to this cache repository first (a transfer links only its own). */
  private async fromStore(cache: string, digest: string, size: number): Promise<BlobHandle> {
    await this.storage.repositories.linkBlob(cache, digest);
    this.metrics.cacheHit('blob');
    this.opts.onCacheAccess?.(digest);
    return this.local.blobHandle(digest, size);
  }

  /**
   * A blob the cache repository does not hold: the upstream confirms that the repository has it,
   * by a manifest of this repository it served that lists the blob (no round trip over the slow
   * link, and none needed while the link is down), else by a HEAD (a transfer for this repository was
   * confirmed when it started). Then it is served from the store when held for another
   * repository (linked, no second transfer), else from the running or a new transfer.
   *
   * The store is asked once whether it holds the blob (after the upstream confirmed it, when no
   * transfer of it runs here): a transfer leaves the running set only after its blob is in the
   * store, and its readers read the store once it committed, so a transfer found running needs no
   * look. A transfer started here looks again once it holds the digest's lease across replicas
   * (ClusterPartialBlobs: another replica may have committed the blob meanwhile).
   */
  private async upstreamHandle(upstreamKey: string, repository: string, cache: string, digest: string): Promise<BlobHandle> {
    const upstream = this.upstream(upstreamKey);
    let transfer = this.opts.transfers.get(digest);
    if (transfer?.repository !== cache) {
      // Before asking the upstream anything: content that just failed its digest is held back.
      this.opts.transfers.refuseIfBad(digest);
      const listed = this.sizes.get(cache, digest) ?? (await this.cachedManifestSize(cache, digest));
      const size = listed ?? (await upstream.headBlob(repository, digest)).size;
      // While we asked, another request may have started this transfer, or finished it.
      transfer = this.opts.transfers.get(digest);
      if (!transfer) {
        const held = await this.storage.blobs.size(digest);
        if (held !== undefined) return this.fromStore(cache, digest, held);
      }
      // The running transfer, also one another request started while the store answered.
      transfer = this.opts.transfers.ensure({ digest, size, source: upstream.rangeSource(repository, digest), repository: cache, upstream: upstreamKey, label: `${upstreamKey}/${repository}@${digest.slice(0, 19)}` });
      // Joined a transfer for another repository: this one holds the blob too once it is in.
      if (transfer.repository !== cache) transfer.committed.then(() => this.storage.repositories.linkBlob(cache, digest)).catch(() => {});
    }
    this.metrics.cacheMiss('blob');
    return this.readerHandle(transfer);
  }

  /** The size a manifest held in cache repository `cache` gives the blob, if one lists it (one pulled before a restart, say). */
  private async cachedManifestSize(cache: string, digest: string): Promise<number | undefined> {
    for (const m of await this.storage.repositories.listManifests(cache)) {
      const meta = await this.storage.repositories.getManifestMeta(cache, m);
      const bytes = meta && (await this.local.readManifestBytes(m).catch(() => undefined));
      if (!meta || !bytes) continue;
      try {
        const d = parseManifest(bytes, meta.mediaType).blobs.find((b) => b.digest === digest);
        if (d) return d.size;
      } catch {
        // Stored from the upstream as it was: one this parser refuses lists nothing here.
      }
    }
    return undefined;
  }

  private readerHandle(transfer: TransferHandle): BlobHandle {
    return {
      digest: transfer.digest,
      size: transfer.size,
      open: async (range) => transfer.transfer.createReader(range?.start ?? 0, range?.end ?? transfer.size - 1),
      ready: async (timeoutMs) => {
        // The client waits from now, not from its first byte: the link serves its blob before a prefetch's.
        const stopWaiting = transfer.transfer.clientWaits?.();
        try {
          await firstByteWithin(transfer.transfer.firstByte, timeoutMs);
        } finally {
          stopWaiting?.();
        }
      },
    };
  }

  /** The repositories requests under `name` are served from: its local one, then its upstream's cache. */
  private servingRepos(name: string, ctx?: RequestContext): string[] {
    const r = this.route(name, undefined, ctx);
    const repos = r.local === undefined ? [] : [r.local];
    if (r.upstream) repos.push(MirrorRegistry.cacheName(r.upstream.name, r.upstream.repository));
    return repos;
  }

  /** The repository holding `digest` for requests under `name`; undefined when none does. */
  async holderOf(name: string, digest: string, ctx?: RequestContext): Promise<string | undefined> {
    for (const repo of this.servingRepos(name, ctx)) {
      if (await this.storage.repositories.hasBlob(repo, digest)) return repo;
    }
    return undefined;
  }

  // --- listings --------------------------------------------------------------------------------

  async listTags(name: string, page: Page, ctx?: RequestContext): Promise<PageResult<string>> {
    const r = this.route(name, undefined, ctx);
    const served = new Set<string>();
    let known = false;
    const collect = async (repo: string): Promise<void> => {
      if (!(await this.storage.repositories.exists(repo))) return;
      known = true;
      for (const t of await this.storage.repositories.listTags(repo)) served.add(t);
    };
    if (r.local !== undefined) await collect(r.local);
    if (r.upstream) {
      await collect(MirrorRegistry.cacheName(r.upstream.name, r.upstream.repository));
      // The upstream's own list, always (a listing is rare and must show what can be pulled);
      // when it cannot be reached, what is held here is still an answer.
      try {
        for (const t of await this.upstream(r.upstream.name).listTags(r.upstream.repository)) served.add(t);
        known = true;
      } catch (e) {
        if (!isNotFound(e)) {
          if (!known) throw e;
          this.opts.logger.warn({ err: e, name, upstream: r.upstream.name }, 'upstream tag list unavailable; listing the tags held here');
        }
      }
    }
    if (!known) throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known`, { name });
    return paginate(requestedTags(r, served), page);
  }

  async catalog(page: Page): Promise<PageResult<string>> {
    return paginate(catalogNames(this.opts.routing, await this.storage.repositories.listRepositories()), page);
  }

  async referrers(name: string, digest: string, artifactType?: string): Promise<ReferrersResult> {
    const r = this.route(name);
    return this.local.referrers(r.local ?? name, digest, artifactType);
  }

  // --- push: into the local repository the name is served from -------------------------------
  // A push under a rewritten name (kolla-build pushes kolla/<image> by default) lands where pulls
  // of that name look first, so it pulls back under every name served from that repository.
  // Never into a pull-through cache repository ("<upstream key>/<name>"): what is cached from an
  // upstream can be replaced only by that upstream.

  /** The local repository a push under `name` writes to; DENIED when there is none it may write. */
  protected pushTarget(name: string, reference?: string): string {
    const r = this.route(name, reference);
    const by = this.decidedBy(r);
    if (r.local === undefined) {
      throw new RegistryError('PUSH_NOT_LOCAL', `${name} cannot be pushed: ${by} routes it to upstream ${r.upstream?.name ?? '?'} with no local repository`, { name });
    }
    const key = this.cacheUpstreamOf(r.local);
    if (key !== undefined) {
      throw new RegistryError('PUSH_NOT_LOCAL', `${name} cannot be pushed: ${by} gives local repository ${r.local}, the pull-through cache of upstream ${key}; push under another name`, { name, repository: r.local });
    }
    return r.local;
  }

  /** The upstream whose cache repositories `repo` is among ("<key>/..."), if any. */
  private cacheUpstreamOf(repo: string): string | undefined {
    const first = repo.slice(0, repo.indexOf('/'));
    return repo.includes('/') && Object.hasOwn(this.opts.routing.upstreams, first) ? first : undefined;
  }

  /** The routing decision in words, for messages. */
  private decidedBy(r: Route): string {
    if (r.rule === undefined) return 'routing (no rewrite rule matches)';
    return `rewrite rule ${r.rule} (match ${JSON.stringify(this.opts.routing.rewrite[r.rule]?.match)})`;
  }

  putManifest(name: string, reference: string, bytes: Buffer, contentType?: string): Promise<{ digest: string; subject?: string }> {
    const r = this.route(name, reference);
    const target = this.pushTarget(name, reference);
    // Blobs a client could read under this name (its upstream's cache) may be referenced too.
    const readable = r.upstream ? [MirrorRegistry.cacheName(r.upstream.name, r.upstream.repository)] : [];
    return this.local.putManifest(target, r.digest ?? r.tag ?? reference, bytes, contentType, readable);
  }
  deleteManifest(name: string, reference: string): Promise<void> {
    const r = this.route(name, reference);
    return this.local.deleteManifest(r.local ?? name, r.digest ?? r.tag ?? reference);
  }
  /** Unknown under `name` afterwards: unlinked from its local repository and its upstream's cache. */
  async deleteBlob(name: string, digest: string): Promise<void> {
    requireDigest(digest);
    let deleted = false;
    for (const repo of this.servingRepos(name)) deleted = (await this.storage.repositories.unlinkBlob(repo, digest)) || deleted;
    if (!deleted) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
  }
  startUpload(name: string, client?: string): Promise<UploadState> {
    return this.local.startUpload(this.pushTarget(name), client);
  }
  /** Mounts from `from` what a client can read there (its local repository or its upstream's cache). */
  async mountBlob(name: string, digest: string, from?: string): Promise<{ digest: string } | undefined> {
    const target = this.pushTarget(name);
    requireDigest(digest);
    if (from === undefined) return undefined;
    const source = await this.holderOf(from, digest);
    return source === undefined ? undefined : this.local.mountBlob(target, digest, source);
  }
  uploadMonolithic(name: string, digest: string, body: Readable, length?: number): Promise<{ digest: string; size: number }> {
    return this.local.uploadMonolithic(this.pushTarget(name), digest, body, length);
  }
  uploadStatus(name: string, uuid: string): Promise<UploadState> {
    return this.local.uploadStatus(this.pushTarget(name), uuid);
  }
  appendUpload(name: string, uuid: string, body: Readable, range?: ByteRange, length?: number): Promise<UploadState> {
    return this.local.appendUpload(this.pushTarget(name), uuid, body, range, length);
  }
  completeUpload(name: string, uuid: string, digest: string, body?: Readable, length?: number): Promise<{ digest: string; size: number }> {
    return this.local.completeUpload(this.pushTarget(name), uuid, digest, body, length);
  }
  cancelUpload(name: string, uuid: string): Promise<void> {
    return this.local.cancelUpload(this.pushTarget(name), uuid);
  }

  // --- helpers ---------------------------------------------------------------------------------

  private upstream(key: string): UpstreamPort {
    const up = this.opts.upstreams.get(key);
    if (!up) throw new Error(`internal: upstream ${key} has no client`);
    return up;
  }

  private unknown(r: Route, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN', message: string): RegistryError {
    if (r.unknownHost !== undefined) {
      return new RegistryError('NAME_UNKNOWN', `registry host ${r.unknownHost} is not configured in upstreams`, { name: r.requested, host: r.unknownHost });
    }
    return new RegistryError(code, message, { name: r.requested });
  }

  /** Runs a local lookup; a not-found answer (of the given code) becomes undefined. */
  private async tryLocal<T>(fn: () => Promise<T>, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (isRegistryError(e) && (e.code === code || e.code === 'NAME_UNKNOWN')) return undefined;
      throw e;
    }
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof UpstreamNotFoundError || (isRegistryError(e) && isNotFoundCode(e.code));
}

/** Waits for the first byte of a transfer, at most timeoutMs; its failure rejects. */
async function firstByteWithin(firstByte: Promise<void> | undefined, timeoutMs: number): Promise<void> {
  if (!firstByte) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([firstByte, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
  } finally {
    clearTimeout(timer);
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function withTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms} ms`)), ms);
  try {
    return await Promise.race([
      fn(ac.signal),
      new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true })),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
