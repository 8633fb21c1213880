/**
 * The local registry: the OCI Distribution operations over the store, with every check the spec
 * asks for. Knows nothing of HTTP; throws RegistryError for every client error.
 */
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../oci/errors.ts';
import { digestOf, requireDigest } from '../oci/digest.ts';
import { parseManifest, type Descriptor } from '../oci/manifest.ts';
import { parseReadReference, parseReference, requireName } from '../oci/names.ts';
import { openBlob } from '../storage/open-blob.ts';
import type { BlobStream, ByteRange, Origin, Storage, UploadState } from '../storage/storage.ts';
import { paginate } from './paginate.ts';
import type { BlobHandle, ManifestResult, Page, PageResult, ReferrersResult, RegistryBackend } from './types.ts';

/**
 * Manifest bytes kept in memory: 16 MiB holds thousands of ordinary manifests (1 to 50 KiB);
 * larger ones (up to the 4 MiB limit) are read from disk each time, so a few big ones pushed and
 * pulled over and over cannot hold a large share of the mirror's memory.
 */
const MANIFEST_CACHE_BYTES = 16 * 1024 * 1024;
const MANIFEST_CACHE_ENTRY_BYTES = 256 * 1024;

export class LocalRegistry implements RegistryBackend {
  /** Manifest bytes by digest: immutable, so a cache hit is always right. */
  private readonly manifestBytes = new LRUCache<string, Buffer>({ maxSize: MANIFEST_CACHE_BYTES, maxEntrySize: MANIFEST_CACHE_ENTRY_BYTES, sizeCalculation: (b) => Math.max(1, b.length) });

  constructor(private readonly store: Storage) {}

  // --- pull --------------------------------------------------------------------------------

  async getManifest(name: string, reference: string): Promise<ManifestResult> {
    requireName(name);
    const ref = parseReadReference(name, reference);
    const digest = ref.kind === 'digest' ? ref.digest : await this.store.repositories.getTag(name, ref.tag);
    const unknown = (): RegistryError => new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}:${reference}`, { name, reference });
    if (!digest) throw unknown();
    const meta = await this.store.repositories.getManifestMeta(name, digest);
    if (!meta) throw unknown();
    const bytes = await this.readManifestBytes(digest).catch(() => undefined);
    if (!bytes) throw unknown();
    return { name, digest, mediaType: meta.mediaType, size: bytes.length, bytes };
  }

  /** Whether this repository holds the manifest (no upstream involved). */
  async hasManifest(name: string, digest: string): Promise<boolean> {
    return (await this.store.repositories.getManifestMeta(name, digest)) !== undefined;
  }

  /**
   * The repository's blob: its link (or its manifest's: clients may GET a manifest under
   * /blobs/) first, then the blob's size, so a blob the repository does not hold costs the store
   * no look at the blob (a pull-through miss asks the local repository and the cache repository
   * before the upstream: one look at the blob in all, not one per repository).
   */
  async getBlob(name: string, digest: string): Promise<BlobHandle> {
    requireName(name);
    requireDigest(digest);
    const unknown = new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
    const linked = (await this.store.repositories.hasBlob(name, digest)) || (await this.store.repositories.getManifestMeta(name, digest)) !== undefined;
    if (!linked) throw unknown;
    const size = await this.store.blobs.size(digest);
    if (size === undefined) throw unknown;
    return this.blobHandle(digest, size);
  }

  /** A handle on a blob the caller has just found held with this size (no second look at the store). */
  blobHandle(digest: string, size: number): BlobHandle {
    // The size is known: the whole blob is opened as its range.
    const open = (range?: ByteRange): Promise<BlobStream> => openBlob(this.store.blobs, digest, range ?? { start: 0, end: size - 1 });
    const redirect = this.store.blobs.redirectUrl?.bind(this.store.blobs);
    return { digest, size, open, ...(redirect ? { redirectUrl: () => redirect(digest) } : {}) };
  }

  async listTags(name: string, page: Page): Promise<PageResult<string>> {
    requireName(name);
    if (!(await this.store.repositories.exists(name))) throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known`, { name });
    return paginate(await this.store.repositories.listTags(name), page);
  }

  async catalog(page: Page): Promise<PageResult<string>> {
    return paginate(await this.store.repositories.listRepositories(), page);
  }

  async referrers(name: string, digest: string, artifactType?: string): Promise<ReferrersResult> {
    requireName(name);
    requireDigest(digest);
    const all = await this.store.repositories.listReferrers(name, digest);
    const manifests = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
    return { manifests: manifests.map(withoutUndefined), filtered: artifactType !== undefined };
  }

  // --- push --------------------------------------------------------------------------------

  /**
   * A pushed manifest: its blobs must be held by the repository (uploaded or mounted there), or
   * by one of `readableFrom` (repositories the pusher can read them from under the same name);
   * a blob the store holds for some other repository is unknown here, so a digest alone never
   * opens another repository's content.
   */
  async putManifest(name: string, reference: string, bytes: Buffer, contentType?: string, readableFrom: readonly string[] = []): Promise<{ digest: string; subject?: string }> {
    return this.storeManifest(name, reference, bytes, contentType, 'local', [name, ...readableFrom]);
  }

  /**
   * Stores a manifest. Local ones ('local': pushed or imported) must reference blobs and
   * manifests the registry holds, and blobs only in the repositories `blobsFrom` names (when
   * given; an import's own verified content is in the store only); cached ones ('cache') come
   * from an upstream whose blobs arrive on demand.
   */
  async storeManifest(name: string, reference: string, bytes: Buffer, contentType: string | undefined, origin: Origin, blobsFrom?: readonly string[]): Promise<{ digest: string; subject?: string }> {
    requireName(name);
    const ref = parseReference(reference);
    const parsed = parseManifest(bytes, contentType);
    const digest = digestOf(bytes, ref.kind === 'digest' ? requireDigest(ref.digest).algorithm : 'sha256');
    if (ref.kind === 'digest' && ref.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest digest ${digest} does not match ${ref.digest}`, { expected: ref.digest, actual: digest });
    }
    if (origin === 'local') {
      await this.checkReferences(name, parsed.blobs, parsed.manifests, blobsFrom);
      for (const d of parsed.blobs) {
        if (!isForeign(d)) await this.store.repositories.linkBlob(name, d.digest);
      }
    }
    await this.store.blobs.putBytes(bytes, digest);
    this.manifestBytes.set(digest, bytes);
    await this.store.repositories.setOrigin(name, origin);
    await this.store.repositories.linkManifest(name, digest, {
      mediaType: parsed.mediaType,
      size: bytes.length,
      artifactType: parsed.artifactType,
      subject: parsed.subject?.digest,
      annotations: parsed.annotations,
    });
    if (ref.kind === 'tag') await this.store.repositories.setTag(name, ref.tag, digest);
    return { digest, subject: parsed.subject?.digest };
  }

  async deleteManifest(name: string, reference: string): Promise<void> {
    requireName(name);
    const ref = parseReference(reference);
    const ok = ref.kind === 'tag' ? await this.store.repositories.deleteTag(name, ref.tag) : await this.store.repositories.unlinkManifest(name, ref.digest);
    if (!ok) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}:${reference}`, { name, reference });
  }

  async deleteBlob(name: string, digest: string): Promise<void> {
    requireName(name);
    requireDigest(digest);
    if (!(await this.store.repositories.unlinkBlob(name, digest))) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
  }

  async startUpload(name: string, client?: string): Promise<UploadState> {
    requireName(name);
    return this.store.uploads.create(name, client);
  }

  async mountBlob(name: string, digest: string, from?: string): Promise<{ digest: string } | undefined> {
    requireName(name);
    requireDigest(digest);
    if (from === undefined) return undefined;
    requireName(from);
    if (!(await this.store.repositories.hasBlob(from, digest)) || !(await this.store.blobs.has(digest))) return undefined;
    await this.store.repositories.linkBlob(name, digest);
    await this.store.repositories.setOrigin(name, 'local');
    return { digest };
  }

  async uploadMonolithic(name: string, digest: string, body: Readable, length?: number): Promise<{ digest: string; size: number }> {
    requireName(name);
    requireDigest(digest);
    const result = await this.store.blobs.ingest(body, { digest, size: length });
    await this.store.repositories.linkBlob(name, digest);
    await this.store.repositories.setOrigin(name, 'local');
    return result;
  }

  async uploadStatus(name: string, uuid: string): Promise<UploadState> {
    requireName(name);
    return this.store.uploads.get(name, uuid);
  }

  async appendUpload(name: string, uuid: string, body: Readable, range?: ByteRange, length?: number): Promise<UploadState> {
    requireName(name);
    return this.store.uploads.append(name, uuid, body, range, length);
  }

  async completeUpload(name: string, uuid: string, digest: string, body?: Readable, length?: number): Promise<{ digest: string; size: number }> {
    requireName(name);
    requireDigest(digest);
    await this.store.uploads.get(name, uuid);
    if (body) await this.store.uploads.append(name, uuid, body, undefined, length);
    const result = await this.store.uploads.complete(name, uuid, digest);
    await this.store.repositories.setOrigin(name, 'local');
    return result;
  }

  async cancelUpload(name: string, uuid: string): Promise<void> {
    requireName(name);
    await this.store.uploads.cancel(name, uuid);
  }

  // --- helpers -----------------------------------------------------------------------------

  async readManifestBytes(digest: string): Promise<Buffer> {
    const cached = this.manifestBytes.get(digest);
    if (cached) return cached;
    const bytes = await this.store.blobs.readBytes(digest);
    this.manifestBytes.set(digest, bytes);
    return bytes;
  }

  private async heldByAny(repos: readonly string[], digest: string): Promise<boolean> {
    for (const repo of repos) {
      if (await this.store.repositories.hasBlob(repo, digest)) return true;
    }
    return false;
  }

  private async checkReferences(name: string, blobs: Descriptor[], manifests: Descriptor[], blobsFrom: readonly string[] | undefined): Promise<void> {
    for (const d of blobs) {
      if (isForeign(d)) continue;
      const held = blobsFrom === undefined || (await this.heldByAny(blobsFrom, d.digest));
      const size = held ? await this.store.blobs.size(d.digest) : undefined;
      if (size === undefined) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob unknown: ${d.digest}`, { digest: d.digest });
      if (size !== d.size) throw new RegistryError('MANIFEST_INVALID', `descriptor size ${d.size} of ${d.digest} does not match the blob's ${size}`, { digest: d.digest });
    }
    for (const d of manifests) {
      if (!(await this.store.repositories.getManifestMeta(name, d.digest))) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest unknown: ${d.digest}`, { digest: d.digest });
      }
    }
  }
}

/** Non-distributable layers live elsewhere (their urls); a registry need not hold them. */
function isForeign(d: Descriptor): boolean {
  return d.mediaType.includes('foreign') || d.mediaType.includes('nondistributable');
}

function withoutUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

