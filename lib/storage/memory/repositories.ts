/** The memory backend's RepositoryStorage, for unit tests: each repository's records in maps. */
import { requireDigest } from '../../oci/digest.ts';
import { requireName, requireTag } from '../../oci/names.ts';
import { compareLexical } from '../repositories.ts';
import type { ManifestMeta, Origin, RepositoryStorage, TagRecord } from '../storage.ts';

interface Repository {
  manifests: Map<string, ManifestMeta>;
  tags: Map<string, { digest: string; checkedAt: number }>;
  layers: Set<string>;
  /** subject -> referrer digest -> descriptor */
  referrers: Map<string, Map<string, Record<string, unknown>>>;
  origin?: Origin;
}

export class MemoryRepositoryStorage implements RepositoryStorage {
  private readonly repos = new Map<string, Repository>();

  constructor(private readonly now: () => number = Date.now) {}

  async getManifestMeta(name: string, digest: string): Promise<ManifestMeta | undefined> {
    const meta = this.find(name)?.manifests.get(requireDigest(digest).digest);
    return meta && structuredClone(meta);
  }

  async linkManifest(name: string, digest: string, meta: ManifestMeta): Promise<void> {
    const repo = this.repo(name);
    repo.manifests.set(requireDigest(digest).digest, structuredClone(meta));
    if (meta.subject) {
      const subject = requireDigest(meta.subject).digest;
      let of = repo.referrers.get(subject);
      if (!of) repo.referrers.set(subject, (of = new Map()));
      of.set(digest, JSON.parse(JSON.stringify({ mediaType: meta.mediaType, digest, size: meta.size, artifactType: meta.artifactType, annotations: meta.annotations })) as Record<string, unknown>);
    }
  }

  async unlinkManifest(name: string, digest: string): Promise<boolean> {
    const repo = this.find(name);
    const meta = repo?.manifests.get(requireDigest(digest).digest);
    if (!repo || !meta) return false;
    for (const [tag, t] of [...repo.tags]) if (t.digest === digest) repo.tags.delete(tag);
    if (meta.subject) repo.referrers.get(meta.subject)?.delete(digest);
    repo.manifests.delete(digest);
    return true;
  }

  async listManifests(name: string): Promise<string[]> {
    return [...(this.find(name)?.manifests.keys() ?? [])];
  }

  async getTag(name: string, tag: string): Promise<string | undefined> {
    return this.find(name)?.tags.get(requireTag(tag))?.digest;
  }

  async setTag(name: string, tag: string, digest: string): Promise<void> {
    this.repo(name).tags.set(requireTag(tag), { digest: requireDigest(digest).digest, checkedAt: this.now() });
  }

  async readTag(name: string, tag: string): Promise<TagRecord | undefined> {
    const t = this.find(name)?.tags.get(requireTag(tag));
    return t && { ...t };
  }

  async markTagChecked(name: string, tag: string, seen: TagRecord): Promise<void> {
    const t = this.find(name)?.tags.get(requireTag(tag));
    if (t && t.digest === seen.digest) t.checkedAt = this.now();
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    return this.find(name)?.tags.delete(requireTag(tag)) ?? false;
  }

  async listTags(name: string): Promise<string[]> {
    return [...(this.find(name)?.tags.keys() ?? [])].sort(compareLexical);
  }

  async hasBlob(name: string, digest: string): Promise<boolean> {
    return this.find(name)?.layers.has(requireDigest(digest).digest) ?? false;
  }

  async linkBlob(name: string, digest: string): Promise<void> {
    this.repo(name).layers.add(requireDigest(digest).digest);
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    return this.find(name)?.layers.delete(requireDigest(digest).digest) ?? false;
  }

  async listBlobs(name: string): Promise<string[]> {
    return [...(this.find(name)?.layers ?? [])];
  }

  async listReferrers(name: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const of = this.find(name)?.referrers.get(requireDigest(subject).digest);
    return [...(of ?? new Map<string, Record<string, unknown>>())].sort(([a], [b]) => compareLexical(a, b)).map(([, d]) => structuredClone(d));
  }

  async getOrigin(name: string): Promise<Origin | undefined> {
    return this.find(name)?.origin;
  }

  async setOrigin(name: string, origin: Origin): Promise<void> {
    const repo = this.repo(name);
    if (repo.origin !== 'local') repo.origin = origin;
  }

  async exists(name: string): Promise<boolean> {
    const repo = this.find(name);
    return repo !== undefined && (repo.manifests.size > 0 || repo.tags.size > 0 || repo.layers.size > 0);
  }

  async listRepositories(): Promise<string[]> {
    return this.names((r) => r.manifests.size > 0 || r.tags.size > 0);
  }

  async listAllRepositories(): Promise<string[]> {
    return this.names((r) => r.manifests.size > 0 || r.tags.size > 0 || r.layers.size > 0);
  }

  private names(keep: (r: Repository) => boolean): string[] {
    return [...this.repos].filter(([, r]) => keep(r)).map(([n]) => n).sort(compareLexical);
  }

  private find(name: string): Repository | undefined {
    return this.repos.get(requireName(name));
  }

  private repo(name: string): Repository {
    let repo = this.find(name);
    if (!repo) this.repos.set(name, (repo = { manifests: new Map(), tags: new Map(), layers: new Set(), referrers: new Map() }));
    return repo;
  }
}
