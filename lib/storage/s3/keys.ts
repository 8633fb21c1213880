/**
 * Every key of the S3 store is spelled here (relative to storage.prefix), from validated names
 * and digests only. The layout follows the filesystem store's (lib/storage/paths.ts):
 *
 *   blobs/sha256/<hex>                                   immutable content, digest verified (visible only once whole)
 *   touched/sha256/<hex>                                 empty; its metadata touched-at: when the blob was last used (LRU)
 *   sidecars/sha256/<hex>/<key>                          small records derived from a blob (the relay's chunk lists)
 *   tmp/<uuid>                                           an ingest whose digest is known only at its end
 *   partials/sha256/<hex>/pieces/<start>-<end>-<gen>     bytes of a pull-through transfer in progress (partial-blobs.ts)
 *   partials/sha256/<hex>/held                           the ranges of it recorded as held
 *   transfer-state/<key>.json                            small state of the transfers (what each upstream's link learned)
 *   uploads/<uuid>/state.json                            a push session: repository, client, start
 *   uploads/<uuid>/chunks/<offset, 16 digits>            the bytes of one PATCH, at that offset of the upload
 *   repositories/<name>/_tags/<tag>                      the manifest digest the tag points to (metadata checked-at)
 *   repositories/<name>/_manifests/sha256/<hex>          this repository holds that manifest (JSON meta)
 *   repositories/<name>/_layers/sha256/<hex>             this repository may serve that blob
 *   repositories/<name>/_referrers/sha256/<subject hex>/<alg>-<hex>   descriptor of a referrer
 *   repositories/<name>/_origin                          "local" (pushed, pinned) or "cache" (pull-through)
 *   cluster/...                                          the replicas' leases, transfer progress, heartbeats (lib/cluster/); gc and eviction leave it
 *
 * Name components never start with "_" (OCI grammar), so the "_x" folders cannot clash with names.
 */
import { requireDigest } from '../../oci/digest.ts';
import { requireName, requireTag } from '../../oci/names.ts';

const UUID = /^[0-9a-f-]{36}$/;
const SIDECAR = /^[a-z0-9.-]+$/;
/** Offsets are zero-padded so that key order is offset order. */
const OFFSET_DIGITS = 16;

function digestPath(digest: string): string {
  const d = requireDigest(digest);
  return `${d.algorithm}/${d.hex}`;
}

/** "sha256/<hex>" (the tail of a blob key) back to a digest; undefined for anything else. */
export function digestOfPath(path: string): string | undefined {
  const m = /^(sha256|sha512)\/([0-9a-f]+)$/.exec(path);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

export const keys = {
  blobs: 'blobs/',
  blob: (digest: string): string => `blobs/${digestPath(digest)}`,
  touched: 'touched/',
  touch: (digest: string): string => `touched/${digestPath(digest)}`,
  sidecars: (digest: string): string => `sidecars/${digestPath(digest)}/`,
  sidecar(digest: string, key: string): string {
    if (!SIDECAR.test(key)) throw new Error(`invalid sidecar key ${key}`);
    return `sidecars/${digestPath(digest)}/${key}`;
  },
  tmp: 'tmp/',
  temp: (uuid: string): string => `tmp/${uuid}`,

  partials: 'partials/',
  partial: (digest: string): string => `partials/${digestPath(digest)}/`,
  transferState(key: string): string {
    if (!/^[a-z0-9-]+$/.test(key)) throw new Error(`invalid transfer state key ${key}`);
    return `transfer-state/${key}.json`;
  },

  uploads: 'uploads/',
  upload(uuid: string): string {
    if (!UUID.test(uuid)) throw new Error(`invalid upload id ${uuid}`);
    return `uploads/${uuid}/`;
  },
  uploadState: (uuid: string): string => `${keys.upload(uuid)}state.json`,
  uploadChunks: (uuid: string): string => `${keys.upload(uuid)}chunks/`,
  uploadChunk: (uuid: string, offset: number): string => `${keys.uploadChunks(uuid)}${String(offset).padStart(OFFSET_DIGITS, '0')}`,
  /** The offset a chunk key starts at (the chunk keys of one upload, in key order, are in offset order). */
  chunkOffset: (key: string): number => Number(key.slice(key.lastIndexOf('/') + 1)),

  repositories: 'repositories/',
  repository: (name: string): string => `repositories/${requireName(name)}/`,
  tags: (name: string): string => `${keys.repository(name)}_tags/`,
  tag: (name: string, tag: string): string => `${keys.tags(name)}${requireTag(tag)}`,
  manifests: (name: string): string => `${keys.repository(name)}_manifests/`,
  manifest: (name: string, digest: string): string => `${keys.manifests(name)}${digestPath(digest)}`,
  layers: (name: string): string => `${keys.repository(name)}_layers/`,
  layer: (name: string, digest: string): string => `${keys.layers(name)}${digestPath(digest)}`,
  referrers: (name: string, subject: string): string => `${keys.repository(name)}_referrers/${digestPath(subject)}/`,
  referrer(name: string, subject: string, digest: string): string {
    const d = requireDigest(digest);
    return `${keys.referrers(name, subject)}${d.algorithm}-${d.hex}`;
  },
  origin: (name: string): string => `${keys.repository(name)}_origin`,

  cluster: 'cluster/',
} as const;
