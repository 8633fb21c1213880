/**
 * The relay's registry: the mirror's pull-through logic, restricted. A name routes to a
 * configured upstream (by its host prefix, a rewrite rule or the default upstream) that the
 * allowlist names, or the request is DENIED: upstream hosts come from the config only, so the
 * relay is never an open proxy. Nothing is looked up under the requested name itself (only
 * the per-upstream cache), nothing can be pushed, and nothing is listed.
 */
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.ts';
import { requireDigest } from '../oci/digest.ts';
import type { Route } from '../rewrite/route.ts';
import type { PageResult, ReferrersResult, RequestContext } from '../registry/types.ts';
import type { UploadState } from '../storage/uploads.ts';
import type { ChunkDigests } from '../transfer/range-source.ts';
import { MirrorRegistry, type MirrorOptions } from '../mirror/mirror-registry.ts';
import type { ChunkLists } from './chunk-list.ts';

export interface RelayRegistryOptions extends MirrorOptions {
  /** Keys of upstreams served; all configured ones when empty. */
  allow: readonly string[];
  chunkLists: ChunkLists;
  /** How long a chunk list request waits for a fill in flight (default 20 s: under a client's 30 s headers timeout). */
  chunkWaitMs?: number;
}

const pullOnly = (what: string): RegistryError => new RegistryError('UNSUPPORTED', `the relay is pull-only: ${what} is not supported`);

export class RelayRegistry extends MirrorRegistry {
  private readonly allowed: ReadonlySet<string>;

  constructor(private readonly relayOpts: RelayRegistryOptions) {
    super(relayOpts);
    this.allowed = new Set(relayOpts.allow.length > 0 ? relayOpts.allow : Object.keys(relayOpts.routing.upstreams));
  }

  override route(name: string, reference?: string, ctx?: RequestContext): Route {
    const r = super.route(name, reference, ctx);
    if (r.unknownHost !== undefined) throw new RegistryError('DENIED', `registry host ${r.unknownHost} is not served by this relay`, { name });
    if (!r.upstream) throw new RegistryError('DENIED', `${name} is not served by this relay`, { name });
    if (!this.allowed.has(r.upstream.name)) throw new RegistryError('DENIED', `upstream ${r.upstream.name} is not allowed on this relay`, { name });
    const { local: _local, ...upstreamOnly } = r;
    return upstreamOnly;
  }

  /**
   * Digests of `chunkSize` chunks of a blob the relay holds complete. A fill in flight is waited
   * for (the mirror asks once it has every byte, so the relay is done or about to be); a blob
   * it neither holds nor fetches is BLOB_UNKNOWN.
   */
  async chunkDigests(name: string, digest: string, chunkSize: number): Promise<ChunkDigests> {
    requireDigest(digest);
    this.route(name);
    const fill = this.relayOpts.fills.get(digest);
    if (fill) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.relayOpts.chunkWaitMs ?? 20_000);
      });
      await Promise.race([fill.committed.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
    }
    // Scoped like the blob itself: only a repository of this name that holds it offers its chunks.
    const held = (await this.holderOf(name, digest)) !== undefined;
    const list = held ? await this.relayOpts.chunkLists.get(digest, chunkSize) : undefined;
    if (!list) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not complete on this relay`, { digest });
    this.relayOpts.onCacheAccess?.(digest);
    return list;
  }

  override catalog(): Promise<PageResult<string>> {
    return Promise.reject(pullOnly('listing repositories'));
  }
  override referrers(): Promise<ReferrersResult> {
    return Promise.reject(pullOnly('the referrers API'));
  }
  override putManifest(): Promise<{ digest: string; subject?: string }> {
    return Promise.reject(pullOnly('pushing a manifest'));
  }
  override deleteManifest(): Promise<void> {
    return Promise.reject(pullOnly('deleting a manifest'));
  }
  override deleteBlob(): Promise<void> {
    return Promise.reject(pullOnly('deleting a blob'));
  }
  override startUpload(): Promise<UploadState> {
    return Promise.reject(pullOnly('uploading'));
  }
  override mountBlob(): Promise<{ digest: string } | undefined> {
    return Promise.reject(pullOnly('mounting a blob'));
  }
  override uploadMonolithic(_name: string, _digest: string, body: Readable): Promise<{ digest: string; size: number }> {
    body.resume();
    return Promise.reject(pullOnly('uploading'));
  }
  override uploadStatus(): Promise<UploadState> {
    return Promise.reject(pullOnly('uploading'));
  }
  override appendUpload(_name: string, _uuid: string, body: Readable): Promise<UploadState> {
    body.resume();
    return Promise.reject(pullOnly('uploading'));
  }
  override completeUpload(_name: string, _uuid: string, _digest: string, body?: Readable): Promise<{ digest: string; size: number }> {
    body?.resume();
    return Promise.reject(pullOnly('uploading'));
  }
  override cancelUpload(): Promise<void> {
    return Promise.reject(pullOnly('uploading'));
  }
}
