/**
 * The relay's registry: a pull-through backend (the mirror's, lib/mirror/mirror-registry.ts) under
 * an allow policy. A name routes to a configured upstream (by its host prefix, a rewrite rule or
 * the default upstream) that the allowlist names, or the request is DENIED: upstream hosts come
 * from the config only, so the relay is never an open proxy. Nothing is looked up under the
 * requested name itself (only the per-upstream cache). It serves pulls only and lists nothing:
 * it offers no push backend, catalog or referrers, so the v2 router answers those UNSUPPORTED.
 */
import { RegistryError } from '../oci/errors.ts';
import { requireDigest } from '../oci/digest.ts';
import type { Route } from '../rewrite/route.ts';
import type { BlobHandle, ManifestResult, Page, PageResult, PullBackend, RequestContext } from '../registry/types.ts';
import type { ChunkDigests } from '../transfer/range-source.ts';
import { MirrorRegistry, type MirrorOptions, type RoutePolicy } from '../mirror/mirror-registry.ts';
import { CHUNK_LIST_WAIT_MS, type ChunkLists } from './chunk-list.ts';

export interface RelayBackendOptions extends Omit<MirrorOptions, 'routePolicy' | 'transferOnHead' | 'prefetch'> {
  /** Keys of upstreams served; all configured ones when empty. */
  allow: readonly string[];
  chunkLists: ChunkLists;
  /** How long a chunk list request waits for a transfer in flight (default CHUNK_LIST_WAIT_MS, 20 s: under a client's 30 s headers timeout). */
  chunkWaitMs?: number;
}

/** The upstreams a relay serves: those `allow` names, every configured one when it names none. */
export function allowedUpstreams(allow: readonly string[], upstreams: Readonly<Record<string, unknown>>): ReadonlySet<string> {
  return new Set(allow.length > 0 ? allow : Object.keys(upstreams));
}

/** Routes only to an allowed upstream, never to a local repository; anything else is DENIED. */
export function allowPolicy(allowed: ReadonlySet<string>): RoutePolicy {
  return (r, name) => {
    if (r.unknownHost !== undefined) throw new RegistryError('DENIED', `registry host ${r.unknownHost} is not served by this relay`, { name });
    if (!r.upstream) throw new RegistryError('DENIED', `${name} is not served by this relay`, { name });
    if (!allowed.has(r.upstream.name)) throw new RegistryError('DENIED', `upstream ${r.upstream.name} is not allowed on this relay`, { name });
    const { local: _local, ...upstreamOnly }: Route = r;
    return upstreamOnly;
  };
}

export class RelayBackend implements PullBackend {
  private readonly mirror: MirrorRegistry;

  constructor(private readonly opts: RelayBackendOptions) {
    this.mirror = new MirrorRegistry({
      ...opts,
      routePolicy: allowPolicy(allowedUpstreams(opts.allow, opts.routing.upstreams)),
      // The mirror's HEAD is the start of its pull, and the relay's upstream side is fast.
      transferOnHead: true,
    });
  }

  getManifest(name: string, reference: string, ctx?: RequestContext): Promise<ManifestResult> {
    return this.mirror.getManifest(name, reference, ctx);
  }

  getBlob(name: string, digest: string, ctx?: RequestContext): Promise<BlobHandle> {
    return this.mirror.getBlob(name, digest, ctx);
  }

  listTags(name: string, page: Page, ctx?: RequestContext): Promise<PageResult<string>> {
    return this.mirror.listTags(name, page, ctx);
  }

  /**
   * Digests of `chunkSize` chunks of a blob the relay holds complete. A transfer in flight is waited
   * for (the mirror asks once it has every byte, so the relay is done or about to be); a blob
   * it neither holds nor fetches is BLOB_UNKNOWN.
   */
  async chunkDigests(name: string, digest: string, chunkSize: number): Promise<ChunkDigests> {
    requireDigest(digest);
    this.mirror.route(name);
    const transfer = this.opts.transfers.get(digest);
    if (transfer) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.opts.chunkWaitMs ?? CHUNK_LIST_WAIT_MS);
      });
      await Promise.race([transfer.committed.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
    }
    // Scoped like the blob itself: only a repository of this name that holds it offers its chunks.
    const held = (await this.mirror.holderOf(name, digest)) !== undefined;
    const list = held ? await this.opts.chunkLists.get(digest, chunkSize) : undefined;
    if (!list) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not complete on this relay`, { digest });
    this.opts.onCacheAccess?.(digest);
    return list;
  }
}
