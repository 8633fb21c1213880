/**
 * Synthetic docker save tarballs, built with tar-stream: the legacy layout (manifest.json,
 * repositories, <id>/layer.tar, <config>.json) and Docker 25's OCI layout (oci-layout, index.json,
 * blobs/sha256/..., plus manifest.json). Entry order is chosen by the caller.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import { openStore, type FsStorage } from '../../lib/storage/store.ts';

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const hex = (digest: string): string => digest.slice('sha256:'.length);

export interface TarFile {
  name: string;
  data?: Buffer;
  linkname?: string;
  type?: 'file' | 'symlink' | 'directory';
}

export async function tarBytes(files: readonly TarFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const f of files) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (f.type === 'symlink') pack.entry({ name: f.name, type: 'symlink', linkname: f.linkname ?? '' }, cb);
      else if (f.type === 'directory') pack.entry({ name: f.name, type: 'directory' }, cb);
      else pack.entry({ name: f.name, size: f.data?.length ?? 0 }, f.data ?? Buffer.alloc(0), cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An uncompressed layer tar holding one file of the given content. */
export function layerTar(content: string): Promise<Buffer> {
  return tarBytes([{ name: `etc/${createHash('md5').update(content).digest('hex')}`, data: Buffer.from(content) }]);
}

export interface SyntheticImage {
  layers: Buffer[];
  config: Buffer;
  configDigest: string;
  diffIds: string[];
}

export async function syntheticImage(seed: string, layerCount = 2): Promise<SyntheticImage> {
  const layers: Buffer[] = [];
  for (let i = 0; i < layerCount; i++) layers.push(await layerTar(`${seed} layer ${i} `.repeat(50 + i)));
  const diffIds = layers.map(sha256);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: [] }));
  return { layers, config, configDigest: sha256(config), diffIds };
}

export interface LegacyOptions {
  repoTags: string[] | null;
  /** Put manifest.json first instead of last. */
  metadataFirst?: boolean;
  /** Make the second layer a symlink to the first (docker save does this for duplicate layers). */
  duplicateAsSymlink?: boolean;
}

/** A docker save (legacy layout) tarball of one or more images. */
export async function legacyTar(images: Array<{ image: SyntheticImage } & LegacyOptions>): Promise<Buffer> {
  const files: TarFile[] = [];
  const manifest: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  let metadataFirst = false;
  for (const { image, repoTags, duplicateAsSymlink, metadataFirst: first } of images) {
    metadataFirst ||= first === true;
    const layerPaths: string[] = [];
    image.layers.forEach((layer, i) => {
      const id = hex(sha256(`${image.configDigest}/${i}`));
      files.push({ name: `${id}/`, type: 'directory' });
      files.push({ name: `${id}/VERSION`, data: Buffer.from('1.0') });
      files.push({ name: `${id}/json`, data: Buffer.from('{}') });
      if (duplicateAsSymlink && i > 0) {
        files.push({ name: `${id}/layer.tar`, type: 'symlink', linkname: `../${hex(sha256(`${image.configDigest}/0`))}/layer.tar` });
      } else {
        files.push({ name: `${id}/layer.tar`, data: layer });
      }
      layerPaths.push(`${id}/layer.tar`);
    });
    files.push({ name: `${hex(image.configDigest)}.json`, data: image.config });
    manifest.push({ Config: `${hex(image.configDigest)}.json`, RepoTags: repoTags, Layers: layerPaths });
    for (const rt of repoTags ?? []) {
      const colon = rt.lastIndexOf(':');
      (repositories[rt.slice(0, colon)] ??= {})[rt.slice(colon + 1)] = hex(sha256(`${image.configDigest}/${image.layers.length - 1}`));
    }
  }
  const meta: TarFile[] = [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { name: 'repositories', data: Buffer.from(JSON.stringify(repositories)) },
  ];
  return tarBytes(metadataFirst ? [...meta, ...files] : [...files, ...meta]);
}

export interface OciSave {
  tar: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

/** A Docker 25+ style docker save: OCI layout plus manifest.json, index.json last. */
export async function ociTar(image: SyntheticImage, name: string, tag: string): Promise<OciSave> {
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: image.configDigest, size: image.config.length },
    layers: image.layers.map((l) => ({ mediaType: MEDIA.ociLayer, digest: sha256(l), size: l.length })),
  }));
  const manifestDigest = sha256(manifest);
  const blob = (b: Buffer): TarFile => ({ name: `blobs/sha256/${hex(sha256(b))}`, data: b });
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [{ mediaType: MEDIA.ociManifest, digest: manifestDigest, size: manifest.length, annotations: { 'io.containerd.image.name': `docker.io/${name}:${tag}`, 'org.opencontainers.image.ref.name': tag } }],
  };
  const legacy = [{ Config: `blobs/sha256/${hex(image.configDigest)}`, RepoTags: [`${name}:${tag}`], Layers: image.layers.map((l) => `blobs/sha256/${hex(sha256(l))}`) }];
  const tarball = await tarBytes([
    { name: 'blobs/', type: 'directory' },
    { name: 'blobs/sha256/', type: 'directory' },
    ...image.layers.map(blob),
    blob(image.config),
    blob(manifest),
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(legacy)) },
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: Buffer.from(JSON.stringify(index)) },
  ]);
  return { tar: tarball, manifest, manifestDigest };
}

/** A temp dir with a fresh store in it; cleanup removes both. */
export async function tempStore(): Promise<{ dir: string; store: FsStorage; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-archive-'));
  const store = await openStore(path.join(dir, 'data'));
  return { dir, store, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeTemp(dir: string, name: string, data: Buffer): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, data);
  return p;
}

/** Pushes a synthetic image into a store (local) or stores it as pull-through content (cache). */
export async function putImage(store: Storage, name: string, tag: string, image: SyntheticImage, origin: 'local' | 'cache' = 'local'): Promise<string> {
  const registry = new LocalRegistry(store);
  for (const b of [image.config, ...image.layers]) {
    await store.blobs.putBytes(b);
    await store.repositories.linkBlob(name, sha256(b));
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.dockerManifest,
    config: { mediaType: MEDIA.dockerConfig, digest: image.configDigest, size: image.config.length },
    layers: image.layers.map((l) => ({ mediaType: MEDIA.dockerLayer, digest: sha256(l), size: l.length })),
  }));
  const { digest } = await registry.storeManifest(name, tag, manifest, MEDIA.dockerManifest, origin);
  return digest;
}
