/**
 * The fs backend's RepositoryStorage: one small file per record under repositories/<name>/
 * (paths.ts), each written by writeFileAtomic. A tag's mtime is when it was last checked.
 */
import { mkdir, readdir, rm, utimes } from 'node:fs/promises';
import { isValidName, isValidTag } from '../oci/names.ts';
import { isDigest } from '../oci/digest.ts';
import { isNotFound, readIfExists, writeFileAtomic } from './atomic.ts';
import { readdirOr } from './blobs.ts';
import { StatValidatedCache, fileExists } from './file-cache.ts';
import { StorePaths } from './paths.ts';
import type { ManifestMeta, Origin, RepositoryStorage, TagRecord } from './storage.ts';

export type { ManifestMeta, Origin } from './storage.ts';

export class FsRepositoryStorage implements RepositoryStorage {
  /** Tags and manifest links: read on every pull, rarely written. */
  private readonly hot = new StatValidatedCache();

  constructor(private readonly paths: StorePaths) {}

  async init(): Promise<void> {
    await mkdir(this.paths.repositoriesDir, { recursive: true });
  }

  // --- manifests -------------------------------------------------------------------------

  async getManifestMeta(name: string, digest: string): Promise<ManifestMeta | undefined> {
    const text = await this.hot.read(this.paths.manifestLink(name, digest));
    return text === undefined ? undefined : (JSON.parse(text) as ManifestMeta);
  }

  async linkManifest(name: string, digest: string, meta: ManifestMeta): Promise<void> {
    await writeFileAtomic(this.paths.tmpDir, this.paths.manifestLink(name, digest), JSON.stringify(meta));
    if (meta.subject) {
      const descriptor = { mediaType: meta.mediaType, digest, size: meta.size, artifactType: meta.artifactType, annotations: meta.annotations };
      await writeFileAtomic(this.paths.tmpDir, this.paths.referrer(name, meta.subject, digest), JSON.stringify(descriptor));
    }
  }

  /** Removes the manifest from the repository, with every tag that points at it. */
  async unlinkManifest(name: string, digest: string): Promise<boolean> {
    const meta = await this.getManifestMeta(name, digest);
    if (!meta) return false;
    for (const tag of await this.listTags(name)) {
      if ((await this.getTag(name, tag)) === digest) await rm(this.paths.tag(name, tag), { force: true });
    }
    if (meta.subject) await rm(this.paths.referrer(name, meta.subject, digest), { force: true });
    await rm(this.paths.manifestLink(name, digest), { force: true });
    return true;
  }

  async listManifests(name: string): Promise<string[]> {
    const out: string[] = [];
    const dir = this.paths.manifestLinksDir(name);
    for (const alg of await readdirOr(dir)) {
      for (const hex of await readdirOr(this.paths.manifestLinksDir(name, alg))) {
        const d = `${alg}:${hex}`;
        if (isDigest(d)) out.push(d);
      }
    }
    return out;
  }

  // --- tags ------------------------------------------------------------------------------

  async getTag(name: string, tag: string): Promise<string | undefined> {
    const text = await this.hot.read(this.paths.tag(name, tag));
    const digest = text?.trim();
    return digest && isDigest(digest) ? digest : undefined;
  }

  async setTag(name: string, tag: string, digest: string): Promise<void> {
    await writeFileAtomic(this.paths.tmpDir, this.paths.tag(name, tag), digest);
  }

  /**
   * The tag with when it was last written or revalidated (its mtime), for cache freshness: both
   * of one write of it (one open, its fstat and a read of the same fd), however often it is set
   * meanwhile.
   */
  async readTag(name: string, tag: string): Promise<TagRecord | undefined> {
    const read = await this.hot.readStamped(this.paths.tag(name, tag));
    const digest = read?.text.trim();
    return read && digest && isDigest(digest) ? { digest, checkedAt: read.mtimeMs } : undefined;
  }

  /** Records that the upstream confirmed the tag just now (its mtime), unless it was set to another digest since. */
  async markTagChecked(name: string, tag: string, seen: TagRecord): Promise<void> {
    if ((await this.getTag(name, tag)) !== seen.digest) return;
    const now = new Date();
    await utimes(this.paths.tag(name, tag), now, now).catch(() => {});
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    const p = this.paths.tag(name, tag);
    if ((await readIfExists(p)) === undefined) return false;
    await rm(p, { force: true });
    return true;
  }

  /** Tags in lexical order (the order the spec's pagination needs). */
  async listTags(name: string): Promise<string[]> {
    const tags = (await readdirOr(this.paths.tagsDir(name))).filter(isValidTag);
    return tags.sort(compareLexical);
  }

  // --- blob links --------------------------------------------------------------------------

  async hasBlob(name: string, digest: string): Promise<boolean> {
    return fileExists(this.paths.layerLink(name, digest));
  }

  async linkBlob(name: string, digest: string): Promise<void> {
    const p = this.paths.layerLink(name, digest);
    if ((await readIfExists(p)) !== undefined) return;
    await writeFileAtomic(this.paths.tmpDir, p, digest);
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    const p = this.paths.layerLink(name, digest);
    if ((await readIfExists(p)) === undefined) return false;
    await rm(p, { force: true });
    return true;
  }

  async listBlobs(name: string): Promise<string[]> {
    const out: string[] = [];
    for (const alg of await readdirOr(this.paths.layerLinksDir(name))) {
      for (const hex of await readdirOr(this.paths.layerLinksDir(name, alg))) out.push(`${alg}:${hex}`);
    }
    return out.filter(isDigest);
  }

  // --- referrers ---------------------------------------------------------------------------

  async listReferrers(name: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const dir = this.paths.referrersDir(name, subject);
    const out: Array<Record<string, unknown>> = [];
    for (const entry of (await readdirOr(dir)).sort()) {
      const text = await readIfExists(this.paths.referrerEntry(name, subject, entry));
      if (text !== undefined) out.push(JSON.parse(text) as Record<string, unknown>);
    }
    return out;
  }

  // --- origin and catalog ------------------------------------------------------------------

  async getOrigin(name: string): Promise<Origin | undefined> {
    const text = (await readIfExists(this.paths.origin(name)))?.trim();
    return text === 'local' || text === 'cache' ? text : undefined;
  }

  /** Marks a repository's origin; local wins for good once set (pushed content stays pinned). */
  async setOrigin(name: string, origin: Origin): Promise<void> {
    const current = await this.getOrigin(name);
    if (current === origin || current === 'local') return;
    await writeFileAtomic(this.paths.tmpDir, this.paths.origin(name), origin);
  }

  async exists(name: string): Promise<boolean> {
    try {
      const entries = await readdir(this.paths.repository(name));
      return entries.some((e) => e === StorePaths.MANIFESTS || e === StorePaths.LAYERS || e === StorePaths.TAGS);
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  listRepositories(): Promise<string[]> {
    return this.walk([StorePaths.MANIFESTS, StorePaths.TAGS]);
  }

  listAllRepositories(): Promise<string[]> {
    return this.walk([StorePaths.MANIFESTS, StorePaths.TAGS, StorePaths.LAYERS]);
  }

  /** Names whose folder holds one of the given "_x" folders, in lexical order. */
  private async walk(holding: string[]): Promise<string[]> {
    const out: string[] = [];
    const visit = async (components: string[]): Promise<void> => {
      const entries = await readdirOr(this.paths.repositoryFolder(components));
      if (components.length > 0 && entries.some((e) => holding.includes(e))) out.push(components.join('/'));
      for (const e of entries) {
        if (!e.startsWith('_')) await visit([...components, e]);
      }
    };
    await visit([]);
    return out.filter(isValidName).sort(compareLexical);
  }
}

export function compareLexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
