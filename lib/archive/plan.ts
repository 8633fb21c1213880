/**
 * What a bundle holds, as manifests ready to put: read from the OCI layout's index.json when
 * there is one (manifests kept byte for byte, so digests survive the trip), else built from the
 * legacy docker save manifest.json.
 *
 * Legacy layers are uncompressed tars: the manifest is a Docker schema 2 manifest with layers of
 * media type application/vnd.docker.image.rootfs.diff.tar (uncompressed), so each layer's digest
 * is its diff ID and the config stays valid without recompressing anything. containers/image
 * (skopeo, podman) knows the type; dockerd detects compression from the bytes whatever the type
 * says. A layer that is gzip data (a docker-tar written from pulled content) gets the .tar.gzip type.
 *
 * Every blob a manifest references must be in the bundle or already in the store (a bundle
 * exported with --since leaves out what the other side has); anything else is an error naming it.
 */
import { digestOf } from '../oci/digest.ts';
import type { RegistryError } from '../oci/errors.ts';
import { isIndexMediaType, MEDIA } from '../oci/media-types.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { manifestRefs, type ManifestRefs } from '../storage/references.ts';
import type { Storage } from '../storage/storage.ts';
import { blobPath, BundleError, digestFromPath, parseJson, type Bundle, type StoredFile } from './bundle.ts';
import { openBlob } from '../storage/open-blob.ts';

export const DOCKER_LAYER_UNCOMPRESSED = 'application/vnd.docker.image.rootfs.diff.tar';
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export interface PlannedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface PlannedImage {
  /** Names the bundle gives the image (RepoTags, io.containerd.image.name); may be empty. */
  sources: string[];
  /** A tag without a name (an OCI ref.name that is only a tag). */
  tagOnly?: string;
  /** Children before parents; the last one is the image. */
  manifests: PlannedManifest[];
}

export async function planImages(bundle: Bundle, store: Storage): Promise<PlannedImage[]> {
  if (bundle.meta('index.json')) return planOciLayout(bundle, store);
  if (bundle.meta('manifest.json')) return planLegacy(bundle, store);
  throw new BundleError(bundle.label, 'neither an OCI image layout (index.json) nor a docker save archive (manifest.json)');
}

/** The blob at its OCI layout path, or the store's copy when the bundle left it out. */
async function requireDescriptor(bundle: Bundle, store: Storage, d: Descriptor): Promise<void> {
  const inBundle = await bundle.blob(blobPath(d.digest));
  const found = inBundle ?? (await storeFile(store, d.digest));
  if (!found) throw new BundleError(bundle.label, `blob ${d.digest} is missing from the bundle (and from the store)`);
  if (found.digest !== d.digest || found.size !== d.size) {
    throw new BundleError(bundle.label, `blob ${d.digest}: the bundle holds ${found.size} bytes with digest ${found.digest}, the manifest says ${d.size} bytes`);
  }
}

async function storeFile(store: Storage, digest: string): Promise<StoredFile | undefined> {
  const s = await store.blobs.stat(digest);
  return s ? { digest, size: s.size } : undefined;
}

async function readStored(bundle: Bundle, store: Storage, d: Pick<Descriptor, 'digest' | 'size'>, what: string): Promise<Buffer> {
  const inBundle = await bundle.blob(blobPath(d.digest));
  if (!inBundle && !(await store.blobs.has(d.digest))) throw new BundleError(bundle.label, `${what} ${d.digest} is missing from the bundle (and from the store)`);
  const bytes = await store.blobs.readBytes(d.digest);
  if (bytes.length !== d.size) throw new BundleError(bundle.label, `${what} ${d.digest} is ${bytes.length} bytes, its descriptor says ${d.size}`);
  return bytes;
}

interface Tree {
  manifests: PlannedManifest[];
  /** Set when an index lacks some children: the one child present, to stand for the image. */
  partial?: { present: number; total: number };
}

async function loadTree(bundle: Bundle, store: Storage, d: Descriptor): Promise<Tree> {
  const bytes = await readStored(bundle, store, d, 'manifest');
  let refs: ManifestRefs;
  try {
    refs = manifestRefs(bytes, d.mediaType);
  } catch (e) {
    throw new BundleError(bundle.label, `manifest ${d.digest}: ${(e as RegistryError).message}`);
  }
  const self: PlannedManifest = { digest: d.digest, mediaType: refs.mediaType, bytes };
  if (!isIndexMediaType(refs.mediaType)) {
    for (const b of refs.blobs) await requireDescriptor(bundle, store, b);
    return { manifests: [self] };
  }
  const present: PlannedManifest[][] = [];
  for (const child of refs.children) {
    try {
      present.push((await loadTree(bundle, store, child)).manifests);
    } catch (e) {
      if (!(e instanceof BundleError)) throw e;
      // docker save of a multi-platform image holds only the platforms pulled: skip the others.
    }
  }
  if (present.length === refs.children.length) return { manifests: [...present.flat(), self] };
  if (present.length === 1) return { manifests: present[0] as PlannedManifest[], partial: { present: 1, total: refs.children.length } };
  throw new BundleError(bundle.label, `index ${d.digest} holds ${present.length} of its ${refs.children.length} platform manifests; cannot import it whole`);
}

interface OciIndex {
  manifests?: Descriptor[];
}

async function planOciLayout(bundle: Bundle, store: Storage): Promise<PlannedImage[]> {
  const index = parseJson<OciIndex>(bundle, 'index.json', bundle.meta('index.json') as Buffer);
  if (!Array.isArray(index.manifests)) throw new BundleError(bundle.label, 'index.json has no manifests');
  const out: PlannedImage[] = [];
  for (const d of index.manifests) {
    if (typeof d?.digest !== 'string' || typeof d.size !== 'number') throw new BundleError(bundle.label, 'index.json has a descriptor without digest or size');
    const tree = await loadTree(bundle, store, { ...d, mediaType: d.mediaType ?? MEDIA.ociManifest });
    const image: PlannedImage = { sources: [], manifests: tree.manifests };
    const full = d.annotations?.[ANNOTATION_IMAGE_NAME];
    const ref = d.annotations?.[ANNOTATION_REF_NAME];
    if (full) image.sources.push(full);
    else if (ref && (ref.includes('/') || ref.includes(':'))) image.sources.push(ref);
    else if (ref) image.tagOnly = ref;
    out.push(image);
  }
  return out;
}

interface LegacyEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

interface ImageConfig {
  rootfs?: { diff_ids?: string[] };
}

async function legacyFile(bundle: Bundle, store: Storage, path: string, fallbackDigest?: string): Promise<StoredFile | undefined> {
  const inBundle = await bundle.blob(path);
  if (inBundle) return inBundle;
  for (const d of [digestFromPath(path), fallbackDigest]) {
    if (d === undefined) continue;
    const s = await storeFile(store, d);
    if (s) return s;
  }
  return undefined;
}

async function isGzip(store: Storage, digest: string): Promise<boolean> {
  if (((await store.blobs.stat(digest))?.size ?? 0) < 2) return false;
  const head: Buffer[] = [];
  for await (const chunk of await openBlob(store.blobs, digest, { start: 0, end: 1 })) head.push(chunk as Buffer);
  const b = Buffer.concat(head);
  return b.length === 2 && b[0] === 0x1f && b[1] === 0x8b;
}

async function planLegacy(bundle: Bundle, store: Storage): Promise<PlannedImage[]> {
  const entries = parseJson<LegacyEntry[]>(bundle, 'manifest.json', bundle.meta('manifest.json') as Buffer);
  if (!Array.isArray(entries)) throw new BundleError(bundle.label, 'manifest.json is not a list');
  const out: PlannedImage[] = [];
  for (const e of entries) {
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw new BundleError(bundle.label, 'manifest.json has an entry without Config or Layers');
    const configPath = e.Config;
    const cfgHex = /^([a-f0-9]{64})\.json$/.exec(configPath)?.[1];
    const cfg = await legacyFile(bundle, store, configPath, cfgHex ? `sha256:${cfgHex}` : undefined);
    if (!cfg) throw new BundleError(bundle.label, `config ${configPath} is missing`);
    if (cfgHex && cfg.digest !== `sha256:${cfgHex}`) throw new BundleError(bundle.label, `config ${configPath} has digest ${cfg.digest}`);
    const config = parseJson<ImageConfig>(bundle, configPath, await store.blobs.readBytes(cfg.digest));
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) {
      throw new BundleError(bundle.label, `${configPath} lists ${diffIds.length} diff IDs for ${e.Layers.length} layers`);
    }
    const layers: Descriptor[] = [];
    for (const [i, layerPath] of e.Layers.entries()) {
      const diffId = diffIds[i] as string;
      const f = await legacyFile(bundle, store, layerPath, diffId);
      if (!f) throw new BundleError(bundle.label, `layer ${layerPath} is missing`);
      const gz = await isGzip(store, f.digest);
      if (!gz && f.digest !== diffId) throw new BundleError(bundle.label, `layer ${layerPath} has digest ${f.digest} but the config's diff ID is ${diffId}`);
      layers.push({ mediaType: gz ? MEDIA.dockerLayer : DOCKER_LAYER_UNCOMPRESSED, size: f.size, digest: f.digest });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: { mediaType: MEDIA.dockerConfig, size: cfg.size, digest: cfg.digest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
    out.push({ sources: e.RepoTags ?? [], manifests: [{ digest: digestOf(bytes), mediaType: MEDIA.dockerManifest, bytes }] });
  }
  return out;
}
