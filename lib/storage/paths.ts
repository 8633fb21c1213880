/**
 * Every path of the filesystem store is built here, from validated names and digests only.
 *
 *   <data>/blobs/sha256/ab/abcdef…                       immutable content, digest verified (manifests too)
 *   <data>/tmp/                                          temp files; renamed into place once complete
 *   <data>/uploads/<uuid>/data | state.json              push sessions in progress
 *   <data>/transfers/sha256/<hex>.part | .journal | .repair   partial blobs: pull-through transfers in progress
 *   <data>/transfers/<key>.json                          transfer state, e.g. links.json: what each upstream's link learned
 *   <data>/repositories/<name>/_tags/<tag>               the manifest digest the tag points to
 *   <data>/repositories/<name>/_manifests/sha256/<hex>   this repository holds that manifest (JSON meta)
 *   <data>/repositories/<name>/_layers/sha256/<hex>      this repository may serve that blob
 *   <data>/repositories/<name>/_referrers/sha256/<subject hex>/<alg>-<hex>   descriptor of a referrer
 *   <data>/repositories/<name>/_origin                   "local" (pushed, pinned) or "cache" (pull-through)
 *   <data>/sidecars/<alg>/<hex>.<key>                    records derived from a blob (the relay's chunk lists)
 *   <data>/ferry.lock                                    the data dir's holder (data-dir-lock.ts)
 *
 * Name components can never start with "_" (OCI grammar), so the "_x" folders cannot clash with names.
 */
import { join } from 'node:path';
import { requireDigest } from '../oci/digest.ts';
import { requireName, requireTag } from '../oci/names.ts';
import { requireSidecarKey } from './storage.ts';
import { UPLOAD_ID } from './upload-sessions.ts';

/** The files of a partial blob: its bytes, the journal of what is held (and its temp), a repair's scratch copy. */
export type PartialFileKind = 'part' | 'journal' | 'journal.tmp' | 'repair';

export class StorePaths {
  constructor(readonly root: string) {}

  get blobsDir(): string { return join(this.root, 'blobs'); }
  get tmpDir(): string { return join(this.root, 'tmp'); }
  get uploadsDir(): string { return join(this.root, 'uploads'); }
  get transfersDir(): string { return join(this.root, 'transfers', 'sha256'); }
  get linkStateFile(): string { return this.transferState('links'); }

  /** A partial blob's files: the bytes, the journal of the ranges held, the repair scratch. */
  partial(digest: string, kind: PartialFileKind): string {
    return join(this.transfersDir, `${requireDigest(digest).hex}.${kind}`);
  }

  /** What a file name of transfersDir is: the partial blob's digest and which of its files; undefined for anything else. */
  partialFileOf(name: string): { digest: string; kind: PartialFileKind } | undefined {
    const m = /^([a-f0-9]{64})\.(part|journal|journal\.tmp|repair)$/.exec(name);
    return m ? { digest: `sha256:${m[1] as string}`, kind: m[2] as PartialFileKind } : undefined;
  }

  /** Small state beside the partial blobs, by key. */
  transferState(key: string): string {
    if (!/^[a-z0-9-]+$/.test(key)) throw new Error(`invalid transfer state key ${key}`);
    return join(this.root, 'transfers', `${key}.json`);
  }
  get repositoriesDir(): string { return join(this.root, 'repositories'); }
  get lockFile(): string { return join(this.root, StorePaths.LOCK); }
  /** Where the relay kept chunk lists before they became sidecars; removed at open. */
  get legacyChunkListsDir(): string { return join(this.root, 'relay', 'chunks'); }

  /** blobs/<algorithm>[/<prefix>], for listing. */
  blobsOf(algorithm: string, prefix?: string): string {
    return prefix === undefined ? join(this.blobsDir, algorithm) : join(this.blobsDir, algorithm, prefix);
  }

  temp(name: string): string { return join(this.tmpDir, name); }

  sidecarsDir(digest: string): string {
    return join(this.root, 'sidecars', requireDigest(digest).algorithm);
  }
  sidecar(digest: string, key: string): string {
    return join(this.sidecarsDir(digest), `${requireDigest(digest).hex}.${requireSidecarKey(key)}`);
  }

  blob(digest: string): string {
    const d = requireDigest(digest);
    return join(this.root, 'blobs', d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  upload(uuid: string): string {
    if (!UPLOAD_ID.test(uuid)) throw new Error(`invalid upload id ${uuid}`);
    return join(this.uploadsDir, uuid);
  }
  uploadData(uuid: string): string { return join(this.upload(uuid), 'data'); }
  uploadState(uuid: string): string { return join(this.upload(uuid), 'state.json'); }

  repository(name: string): string {
    return join(this.repositoriesDir, ...requireName(name).split('/'));
  }

  tagsDir(name: string): string { return join(this.repository(name), StorePaths.TAGS); }
  tag(name: string, tag: string): string { return join(this.tagsDir(name), requireTag(tag)); }

  manifestLink(name: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.repository(name), StorePaths.MANIFESTS, d.algorithm, d.hex);
  }
  manifestLinksDir(name: string, algorithm?: string): string {
    return algorithm === undefined ? join(this.repository(name), StorePaths.MANIFESTS) : join(this.repository(name), StorePaths.MANIFESTS, algorithm);
  }

  layerLink(name: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.repository(name), StorePaths.LAYERS, d.algorithm, d.hex);
  }
  layerLinksDir(name: string, algorithm?: string): string {
    return algorithm === undefined ? join(this.repository(name), StorePaths.LAYERS) : join(this.repository(name), StorePaths.LAYERS, algorithm);
  }

  referrersDir(name: string, subject: string): string {
    const d = requireDigest(subject);
    return join(this.repository(name), '_referrers', d.algorithm, d.hex);
  }
  referrer(name: string, subject: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.referrersDir(name, subject), `${d.algorithm}-${d.hex}`);
  }
  /** A file listed in referrersDir. */
  referrerEntry(name: string, subject: string, entry: string): string { return join(this.referrersDir(name, subject), entry); }

  origin(name: string): string { return join(this.repository(name), '_origin'); }

  /**
   * A folder under repositories/ (relative components) and what it holds: the components of
   * names, and whether it has manifests, tags or blob links (the "_x" folders).
   */
  repositoryFolder(components: string[]): string { return join(this.repositoriesDir, ...components); }
  /** The data dir's lock file, by name (data-dir-lock.ts). */
  static readonly LOCK = 'ferry.lock';
  static readonly MANIFESTS = '_manifests';
  static readonly TAGS = '_tags';
  static readonly LAYERS = '_layers';
}
