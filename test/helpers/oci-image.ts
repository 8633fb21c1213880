/**
 * Deterministic synthetic images for end-to-end tests: real gzipped tar layers (dockerd can unpack
 * them), an image config, and an OCI or Docker v2s2 manifest, plus an OCI image layout on disk
 * for skopeo. Layers are cached on disk by (seed, size, gzip level) and shared between tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { digestOf } from '../../lib/oci/digest.ts';
import { helloElf } from './hello-elf.ts';
import { seededBytes, writeTarGz, type SeededContent, type TarEntry } from './tar-gz-layer.ts';

export type ImageFormat = 'oci' | 'docker';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A layer blob on disk (in the layer cache). */
export interface LayerBlob {
  mediaType: string;
  digest: string;
  diffId: string;
  size: number;
  /** The gzipped blob; hard-linked or copied, never modified. */
  path: string;
  /** The blob bytes, present for layers up to IN_MEMORY_LIMIT bytes. */
  bytes?: Buffer;
}

export interface BuiltImage {
  format: ImageFormat;
  /** The manifest's media type. */
  mediaType: string;
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  configMediaType: string;
  layers: LayerBlob[];
  platform: Platform;
  /** What `docker run --network none IMAGE` prints, when built with `runnable`. */
  runOutput?: string;
}

export interface BuiltIndex {
  format: ImageFormat;
  mediaType: string;
  manifest: Buffer;
  manifestDigest: string;
  images: BuiltImage[];
}

export interface BuildImageOptions {
  /** Amount of pseudo-random file content for each layer, in bytes; blobs are slightly larger. */
  layers: number[];
  seed: string;
  /** Seeds of each layer (default `${seed}/${i}`): the same seed and size make the same blob, so images can share base layers. */
  layerSeeds?: string[];
  format?: ImageFormat;
  /** Adds a first layer holding /hello, a static executable set as entrypoint, which prints this line. */
  runnable?: boolean | { message: string };
  platform?: Platform;
  /** 0 (stored, fast; default for random content) to 9 (6, as docker, for `like-files`). */
  gzipLevel?: number;
  /**
   * random (default): one file of random bytes a layer. like-files: files of 256 bytes to 256 KiB whose
   * bytes compress as a real layer's (tar-gz-layer.ts:seededLikeFiles), gzipped at level 6.
   */
  content?: SeededContent;
}

export const IN_MEMORY_LIMIT = 1 << 20;
export const LAYER_CACHE_DIR = process.env.FERRY_LAYER_CACHE ?? path.join(os.tmpdir(), 'ferry-test-layer-cache-v1');
export const DEFAULT_RUN_MESSAGE = 'hello from ferry';

const FIXED_CREATED = '2024-01-01T00:00:00Z';
const inFlight = new Map<string, Promise<Omit<LayerBlob, 'mediaType'>>>();

interface CachedLayerMeta {
  digest: string;
  diffId: string;
  size: number;
}

/**
 * Builds (or finds in the cache) a layer of `size` seeded random bytes in one file. Concurrent
 * callers share one build; across processes the blob is written to a temp name and renamed.
 */
export function buildRandomLayer(seed: string, size: number, gzipLevel = 0): Promise<Omit<LayerBlob, 'mediaType'>> {
  const name = `data-${createHash('sha256').update(seed).digest('hex').slice(0, 16)}.bin`;
  const entries: TarEntry[] = [{ type: 'dir', name: 'ferry' }, { type: 'file', name: `ferry/${name}`, size, seed }];
  return cachedLayer(`random:${seed}:${size}:${gzipLevel}`, entries, gzipLevel);
}

/**
 * Builds (or finds in the cache) a layer of files holding `size` bytes in all, each of 256 bytes
 * to 256 KiB (sizes seeded, log-uniform), whose content compresses as a real layer's: headers every few KiB on
 * average, as in /usr of a distribution.
 */
export function buildLikeFilesLayer(seed: string, size: number, gzipLevel = 6): Promise<Omit<LayerBlob, 'mediaType'>> {
  const entries: TarEntry[] = [{ type: 'dir', name: 'ferry' }];
  const sizes = seededBytes(`${seed}/sizes`, Math.max(64, Math.ceil(size / 1024) * 2)).next().value as Buffer;
  for (let left = size, i = 0; left > 0; i++) {
    const n = Math.min(left, Math.round(256 * 2 ** ((((sizes[(2 * i) % sizes.length] as number) * 256 + (sizes[(2 * i + 1) % sizes.length] as number)) / 65536) * 10)));
    entries.push({ type: 'file', name: `ferry/f${i}`, size: n, seed: `${seed}/${i}`, content: 'like-files' });
    left -= n;
  }
  return cachedLayer(`like-files:${seed}:${size}:${gzipLevel}`, entries, gzipLevel);
}

function cachedLayer(key: string, entries: TarEntry[], gzipLevel: number): Promise<Omit<LayerBlob, 'mediaType'>> {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 32);
  let p = inFlight.get(hash);
  if (!p) {
    p = loadOrBuild(hash, entries, gzipLevel);
    inFlight.set(hash, p);
    p.catch(() => inFlight.delete(hash));
  }
  return p;
}

async function loadOrBuild(hash: string, entries: TarEntry[], gzipLevel: number): Promise<Omit<LayerBlob, 'mediaType'>> {
  await mkdir(LAYER_CACHE_DIR, { recursive: true });
  const blobPath = path.join(LAYER_CACHE_DIR, `${hash}.tar.gz`);
  const metaPath = path.join(LAYER_CACHE_DIR, `${hash}.json`);
  let meta: CachedLayerMeta | undefined;
  try {
    const m = JSON.parse(await readFile(metaPath, 'utf8')) as CachedLayerMeta;
    if ((await stat(blobPath)).size === m.size) meta = m;
  } catch {
    // not cached (or half-written by a killed run): build it
  }
  if (!meta) {
    const tmp = `${blobPath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      meta = await writeTarGz(tmp, entries, gzipLevel);
      await rename(tmp, blobPath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await writeFile(`${metaPath}.${process.pid}.tmp`, JSON.stringify(meta));
    await rename(`${metaPath}.${process.pid}.tmp`, metaPath);
  }
  const bytes = meta.size <= IN_MEMORY_LIMIT ? await readFile(blobPath) : undefined;
  return { ...meta, path: blobPath, ...(bytes ? { bytes } : {}) };
}

function helloLayer(message: string): Promise<Omit<LayerBlob, 'mediaType'>> {
  const line = `${message}\n`;
  return cachedLayer(`hello:${line}`, [{ type: 'file', name: 'hello', mode: 0o755, data: helloElf(line) }], 0);
}

function mediaTypesFor(format: ImageFormat): { manifest: string; config: string; layer: string } {
  return format === 'oci'
    ? { manifest: MEDIA.ociManifest, config: MEDIA.ociConfig, layer: MEDIA.ociLayerGzip }
    : { manifest: MEDIA.dockerManifest, config: MEDIA.dockerConfig, layer: MEDIA.dockerLayer };
}

export async function buildImage(opts: BuildImageOptions): Promise<BuiltImage> {
  const format = opts.format ?? 'oci';
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const types = mediaTypesFor(format);
  const message = opts.runnable ? (typeof opts.runnable === 'object' ? opts.runnable.message : DEFAULT_RUN_MESSAGE) : undefined;
  if (message !== undefined && (platform.architecture !== 'amd64' || os.arch() !== 'x64')) {
    throw new Error('runnable images are x86-64 only (the entrypoint is a hand-made x86-64 executable)');
  }
  const raw = await Promise.all([
    ...(message !== undefined ? [helloLayer(message)] : []),
    ...opts.layers.map((size, i) => {
      const seed = opts.layerSeeds?.[i] ?? `${opts.seed}/${i}`;
      return opts.content === 'like-files' ? buildLikeFilesLayer(seed, size, opts.gzipLevel) : buildRandomLayer(seed, size, opts.gzipLevel ?? 0);
    }),
  ]);
  const layers: LayerBlob[] = raw.map((l) => ({ mediaType: types.layer, ...l }));

  const configJson = {
    created: FIXED_CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: ['PATH=/'],
      Labels: { 'org.ferry.test.seed': opts.seed },
      ...(message !== undefined ? { Entrypoint: ['/hello'] } : {}),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: FIXED_CREATED, created_by: 'ferry test image builder' })),
  };
  const config = Buffer.from(JSON.stringify(configJson));
  const configDigest = digestOf(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  }, null, 2));
  return {
    format,
    mediaType: types.manifest,
    manifest,
    manifestDigest: digestOf(manifest),
    config,
    configDigest,
    configMediaType: types.config,
    layers,
    platform,
    ...(message !== undefined ? { runOutput: `${message}\n` } : {}),
  };
}

/** An OCI index (or Docker manifest list) over images of the same format. */
export function buildIndex(images: BuiltImage[], format: ImageFormat = images[0]?.format ?? 'oci'): BuiltIndex {
  if (images.some((i) => i.format !== format)) throw new Error('all images of an index must share its format');
  const mediaType = format === 'oci' ? MEDIA.ociIndex : MEDIA.dockerManifestList;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: images.map((i) => ({ mediaType: i.mediaType, digest: i.manifestDigest, size: i.manifest.length, platform: i.platform })),
  }, null, 2));
  return { format, mediaType, manifest, manifestDigest: digestOf(manifest), images };
}

export interface BlobRef {
  digest: string;
  size: number;
  mediaType: string;
}

/** Every blob an image needs (config first, then layers); for an index, of all its images, once each. */
export function blobsOf(image: BuiltImage | BuiltIndex): BlobRef[] {
  const seen = new Map<string, BlobRef>();
  const images = 'images' in image ? image.images : [image];
  for (const img of images) {
    for (const b of [{ digest: img.configDigest, size: img.config.length, mediaType: img.configMediaType }, ...img.layers]) {
      if (!seen.has(b.digest)) seen.set(b.digest, { digest: b.digest, size: b.size, mediaType: b.mediaType });
    }
  }
  return [...seen.values()];
}

/** Streams any blob of the image (config, layer, or a manifest) by digest. */
export function openBlob(image: BuiltImage | BuiltIndex, digest: string): Readable {
  const images = 'images' in image ? image.images : [image];
  if (image.manifestDigest === digest) return Readable.from([image.manifest]);
  for (const img of images) {
    if (img.manifestDigest === digest) return Readable.from([img.manifest]);
    if (img.configDigest === digest) return Readable.from([img.config]);
    const layer = img.layers.find((l) => l.digest === digest);
    if (layer) return layer.bytes ? Readable.from([layer.bytes]) : createReadStream(layer.path);
  }
  throw new Error(`blob ${digest} is not part of image ${image.manifestDigest}`);
}

/**
 * Writes skopeo's `dir:` layout (manifest.json, blobs named by hex digest, child manifests of an
 * index as HEX.manifest.json). Unlike `oci:`, skopeo 1.9 reads any manifest media type from it,
 * so this is the way to push Docker v2s2 images byte for byte.
 */
export async function writeSkopeoDir(dir: string, image: BuiltImage | BuiltIndex): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  await writeFile(path.join(dir, 'manifest.json'), image.manifest);
  const hex = (digest: string): string => digest.slice('sha256:'.length);
  const images = 'images' in image ? image.images : [image];
  for (const img of images) {
    if ('images' in image) await writeFile(path.join(dir, `${hex(img.manifestDigest)}.manifest.json`), img.manifest);
    await writeFile(path.join(dir, hex(img.configDigest)), img.config);
    for (const layer of img.layers) {
      const dest = path.join(dir, hex(layer.digest));
      if (existsSync(dest)) continue;
      await link(layer.path, dest).catch(() => copyFile(layer.path, dest));
    }
  }
}

/**
 * Writes an OCI image layout that skopeo reads as `oci:DIR:REF`. skopeo 1.9 only finds OCI
 * manifests and indexes in it: push Docker-format images with writeSkopeoDir (or pushImage). Layer blobs are hard-linked from
 * the cache when possible. Several refs may be written into one dir by calling this repeatedly.
 */
export async function writeOciLayout(dir: string, image: BuiltImage | BuiltIndex, refName: string): Promise<void> {
  const blobDir = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const blobPath = (digest: string): string => path.join(blobDir, digest.slice('sha256:'.length));
  const put = async (digest: string, data: Buffer): Promise<void> => {
    if (!existsSync(blobPath(digest))) await writeFile(blobPath(digest), data);
  };
  const images = 'images' in image ? image.images : [image];
  if ('images' in image) await put(image.manifestDigest, image.manifest);
  for (const img of images) {
    await put(img.manifestDigest, img.manifest);
    await put(img.configDigest, img.config);
    for (const layer of img.layers) {
      const dest = blobPath(layer.digest);
      if (existsSync(dest)) continue;
      await link(layer.path, dest).catch(() => copyFile(layer.path, dest));
    }
  }
  const indexPath = path.join(dir, 'index.json');
  type Desc = { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
  let index: { schemaVersion: 2; mediaType?: string; manifests: Desc[] } = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] };
  if (existsSync(indexPath)) index = JSON.parse(await readFile(indexPath, 'utf8')) as typeof index;
  const refKey = 'org.opencontainers.image.ref.name';
  index.manifests = index.manifests.filter((m) => m.annotations?.[refKey] !== refName);
  index.manifests.push({ mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifest.length, annotations: { [refKey]: refName } });
  await writeFile(indexPath, JSON.stringify(index, null, 2));
}
