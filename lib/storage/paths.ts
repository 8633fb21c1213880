/**
 * Every path of the filesystem store is built here, from validated names and digests only.
 *
 *   <data>/blobs/sha256/ab/abcdef…                       immutable content, digest verified (manifests too)
 *   <data>/tmp/                                          temp files; renamed into place once complete
 *   <data>/uploads/<uuid>/data | state.json              push sessions in progress
 *   <data>/transfers/sha256/<hex>.part | .journal        pull-through downloads in progress
 *   <data>/transfers/links.json                          what each upstream's link learned (connections, goodput)
 *   <data>/repositories/<name>/_tags/<tag>               the manifest digest the tag points to
 *   <data>/repositories/<name>/_manifests/sha256/<hex>   this repository holds that manifest (JSON meta)
 *   <data>/repositories/<name>/_layers/sha256/<hex>      this repository may serve that blob
 *   <data>/repositories/<name>/_referrers/sha256/<subject hex>/<alg>-<hex>   descriptor of a referrer
 *   <data>/repositories/<name>/_origin                   "local" (pushed, pinned) or "cache" (pull-through)
 *
 * Name components can never start with "_" (OCI grammar), so the "_x" folders cannot clash with names.
 */
import { join } from 'node:path';
import { requireDigest } from '../oci/digest.ts';
import { requireName, requireTag } from '../oci/names.ts';

export class StorePaths {
  constructor(readonly root: string) {}

  get blobsDir(): string { return join(this.root, 'blobs'); }
  get tmpDir(): string { return join(this.root, 'tmp'); }
  get uploadsDir(): string { return join(this.root, 'uploads'); }
  get transfersDir(): string { return join(this.root, 'transfers', 'sha256'); }
  get linkStateFile(): string { return join(this.root, 'transfers', 'links.json'); }
  get repositoriesDir(): string { return join(this.root, 'repositories'); }

  blob(digest: string): string {
    const d = requireDigest(digest);
    return join(this.root, 'blobs', d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  upload(uuid: string): string {
    if (!/^[0-9a-f-]{36}$/.test(uuid)) throw new Error(`invalid upload id ${uuid}`);
    return join(this.uploadsDir, uuid);
  }

  repository(name: string): string {
    return join(this.repositoriesDir, ...requireName(name).split('/'));
  }

  tagsDir(name: string): string { return join(this.repository(name), '_tags'); }
  tag(name: string, tag: string): string { return join(this.tagsDir(name), requireTag(tag)); }

  manifestLink(name: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.repository(name), '_manifests', d.algorithm, d.hex);
  }
  manifestLinksDir(name: string): string { return join(this.repository(name), '_manifests'); }

  layerLink(name: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.repository(name), '_layers', d.algorithm, d.hex);
  }

  referrersDir(name: string, subject: string): string {
    const d = requireDigest(subject);
    return join(this.repository(name), '_referrers', d.algorithm, d.hex);
  }
  referrer(name: string, subject: string, digest: string): string {
    const d = requireDigest(digest);
    return join(this.referrersDir(name, subject), `${d.algorithm}-${d.hex}`);
  }

  origin(name: string): string { return join(this.repository(name), '_origin'); }
}
