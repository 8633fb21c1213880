/**
 * The S3 backend's RepositoryStorage: one small object per record under repositories/<name>/
 * (keys.ts). Each put replaces a record whole, so a reader on any replica sees the old value or
 * the new one. A tag's metadata says when it was last set or checked. No cache in front: every
 * replica must see another's writes at once.
 */
import { isDigest } from '../../oci/digest.ts';
import { isValidName, isValidTag } from '../../oci/names.ts';
import type { ManifestMeta, Origin, RepositoryStorage, TagRecord } from '../storage.ts';
import type { S3Bucket } from './bucket.ts';
import { digestOfPath, keys } from './keys.ts';

const MANIFESTS = '_manifests/';
const LAYERS = '_layers/';
const TAGS = '_tags/';
const READ_PARALLEL = 8;
/** A tag's metadata key: when it was set or last confirmed upstream, ms since the epoch. */
const CHECKED_AT = 'checked-at';

function checkedNow(): Record<string, string> {
  return { [CHECKED_AT]: String(Date.now()) };
}

export class S3RepositoryStorage implements RepositoryStorage {
  constructor(private readonly bucket: S3Bucket) {}

  // --- manifests -------------------------------------------------------------------------

  async getManifestMeta(name: string, digest: string): Promise<ManifestMeta | undefined> {
    const text = await this.bucket.getText(keys.manifest(name, digest));
    return text === undefined ? undefined : (JSON.parse(text) as ManifestMeta);
  }

  async linkManifest(name: string, digest: string, meta: ManifestMeta): Promise<void> {
    await this.bucket.put(keys.manifest(name, digest), JSON.stringify(meta));
    if (meta.subject) {
      const descriptor = { mediaType: meta.mediaType, digest, size: meta.size, artifactType: meta.artifactType, annotations: meta.annotations };
      await this.bucket.put(keys.referrer(name, meta.subject, digest), JSON.stringify(descriptor));
    }
  }

  async unlinkManifest(name: string, digest: string): Promise<boolean> {
    const meta = await this.getManifestMeta(name, digest);
    if (!meta) return false;
    const tags = await this.listTags(name);
    const pointing = (await mapLimited(tags, async (tag) => ((await this.getTag(name, tag)) === digest ? tag : undefined)))
      .filter((t): t is string => t !== undefined);
    await this.bucket.deleteMany([
      ...pointing.map((t) => keys.tag(name, t)),
      ...(meta.subject ? [keys.referrer(name, meta.subject, digest)] : []),
      keys.manifest(name, digest),
    ]);
    return true;
  }

  async listManifests(name: string): Promise<string[]> {
    return this.listDigests(keys.manifests(name));
  }

  // --- tags ------------------------------------------------------------------------------

  async getTag(name: string, tag: string): Promise<string | undefined> {
    return (await this.readTag(name, tag))?.digest;
  }

  async setTag(name: string, tag: string, digest: string): Promise<void> {
    await this.bucket.put(keys.tag(name, tag), digest, { metadata: checkedNow() });
  }

  /** The digest, when it was checked (its metadata: ms; Last-Modified has whole seconds only) and its etag: one GET. */
  async readTag(name: string, tag: string): Promise<TagRecord | undefined> {
    const got = await this.bucket.getVersion(keys.tag(name, tag));
    const digest = got?.bytes.toString('utf8').trim();
    if (!got || !digest || !isDigest(digest)) return undefined;
    const ms = Number(got.metadata[CHECKED_AT]);
    return { digest, checkedAt: Number.isFinite(ms) && ms > 0 ? ms : got.lastModified, version: got.etag };
  }

  /** One PUT over the version read (If-Match): a tag moved or deleted meanwhile stays as it is. */
  async markTagChecked(name: string, tag: string, seen: TagRecord): Promise<void> {
    if (seen.version === undefined) return;
    await this.bucket.put(keys.tag(name, tag), seen.digest, { ifMatch: seen.version, metadata: checkedNow() });
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    return this.deleteIfPresent(keys.tag(name, tag));
  }

  async listTags(name: string): Promise<string[]> {
    const prefix = keys.tags(name);
    const tags: string[] = [];
    for await (const o of this.bucket.list(prefix)) {
      const tag = o.key.slice(prefix.length);
      if (isValidTag(tag)) tags.push(tag);
    }
    return tags.sort(compareLexical);
  }

  // --- blob links --------------------------------------------------------------------------

  async hasBlob(name: string, digest: string): Promise<boolean> {
    return (await this.bucket.head(keys.layer(name, digest))) !== undefined;
  }

  async linkBlob(name: string, digest: string): Promise<void> {
    // If-None-Match: a link already there is left as it is (no rewrite, no new version).
    await this.bucket.putIfAbsent(keys.layer(name, digest), digest);
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    return this.deleteIfPresent(keys.layer(name, digest));
  }

  async listBlobs(name: string): Promise<string[]> {
    return this.listDigests(keys.layers(name));
  }

  // --- referrers ---------------------------------------------------------------------------

  async listReferrers(name: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const found: string[] = [];
    for await (const o of this.bucket.list(keys.referrers(name, subject))) found.push(o.key);
    const texts = await mapLimited(found.sort(compareLexical), (key) => this.bucket.getText(key));
    return texts.filter((t): t is string => t !== undefined).map((t) => JSON.parse(t) as Record<string, unknown>);
  }

  // --- origin and catalog ------------------------------------------------------------------

  async getOrigin(name: string): Promise<Origin | undefined> {
    const text = (await this.bucket.getText(keys.origin(name)))?.trim();
    return text === 'local' || text === 'cache' ? text : undefined;
  }

  /**
   * Conditional writes so that two replicas cannot undo "local": the first origin is put only
   * where there is none, "cache" becomes "local" only over the version read.
   */
  async setOrigin(name: string, origin: Origin): Promise<void> {
    const key = keys.origin(name);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.bucket.getVersion(key);
      if (!current) {
        if (await this.bucket.putIfAbsent(key, origin)) return;
        continue;
      }
      const text = current.bytes.toString('utf8').trim();
      if (text === origin || text === 'local') return;
      if ((await this.bucket.put(key, origin, { ifMatch: current.etag })) !== undefined) return;
    }
  }

  async exists(name: string): Promise<boolean> {
    const repository = keys.repository(name);
    for await (const p of this.bucket.listPrefixes(repository)) {
      const folder = p.slice(repository.length);
      if (folder === MANIFESTS || folder === LAYERS || folder === TAGS) return true;
    }
    return false;
  }

  listRepositories(): Promise<string[]> {
    return this.walk([MANIFESTS, TAGS]);
  }

  listAllRepositories(): Promise<string[]> {
    return this.walk([MANIFESTS, TAGS, LAYERS]);
  }

  /** Names whose "folder" holds one of the given "_x" folders, in lexical order (one LIST per folder, as a directory walk). */
  private async walk(holding: string[]): Promise<string[]> {
    const out: string[] = [];
    const visit = async (components: string[]): Promise<void> => {
      const at = components.length === 0 ? keys.repositories : keys.repository(components.join('/'));
      const entries: string[] = [];
      for await (const p of this.bucket.listPrefixes(at)) entries.push(p.slice(at.length));
      if (components.length > 0 && entries.some((e) => holding.includes(e))) out.push(components.join('/'));
      for (const e of entries) {
        if (!e.startsWith('_')) await visit([...components, e.slice(0, -1)]);
      }
    };
    await visit([]);
    return out.filter(isValidName).sort(compareLexical);
  }

  private async listDigests(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.bucket.list(prefix)) {
      const digest = digestOfPath(o.key.slice(prefix.length));
      if (digest !== undefined) out.push(digest);
    }
    return out;
  }

  private async deleteIfPresent(key: string): Promise<boolean> {
    if ((await this.bucket.head(key)) === undefined) return false;
    await this.bucket.delete(key);
    return true;
  }
}

function compareLexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** fn over items, at most READ_PARALLEL at once, results in order. */
async function mapLimited<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_PARALLEL, items.length) }, worker));
  return out;
}
