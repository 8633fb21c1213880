/**
 * `ferry export`: images out of the store into a bundle another ferry (or docker) can take.
 *
 * oci-dir: an OCI image layout directory, one file per blob (rsync-friendly). Resumable: a blob
 *   file already present with the right size is kept; every blob written is hashed on the way
 *   and renamed into place only when its digest matched. index.json is written last and merges
 *   with the one already there, so exporting more images into one directory adds to it.
 * docker-tar: one tarball laid out as Docker 25's `docker save` does: an OCI layout (oci-layout,
 *   index.json, blobs/sha256/...) plus the legacy manifest.json and repositories pointing into
 *   blobs/, so `docker load` of any version takes it, and `ferry import` reads the OCI index
 *   and keeps every manifest byte for byte. An index (multi-platform) image is listed in
 *   manifest.json by one platform (--platform, default linux/amd64, else the first).
 * since: blobs the other side has are left out; `ferry import` there finds them in its store.
 *   (docker load needs every layer, so docker-tar with --since is for ferry only.)
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { newHash, requireDigest } from '../oci/digest.ts';
import { isIndexMediaType } from '../oci/media-types.ts';
import { fsyncPath } from '../storage/atomic.ts';
import { manifestClosure, type ManifestClosure } from '../storage/references.ts';
import type { Storage } from '../storage/storage.ts';
import { blobPath } from './bundle.ts';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from './plan.ts';
import { silentProgress, type ProgressFactory } from './progress.ts';
import type { SelectedImage } from './select.ts';
import { openBlob } from '../storage/open-blob.ts';

export type ExportFormat = 'oci-dir' | 'docker-tar';

export interface ExportOptions {
  /** Digests the other side has: left out. */
  since?: ReadonlySet<string>;
  /** os/arch[/variant] listed in a docker-tar's manifest.json for an index image. */
  platform?: string;
  progress?: ProgressFactory;
}

export interface ExportResult {
  images: number;
  /** Blobs (manifests included) written. */
  blobsWritten: number;
  bytesWritten: number;
  /** Already in the directory with the right size (oci-dir). */
  blobsPresent: number;
  /** Left out because the other side has them (--since). */
  blobsOmitted: number;
}

interface Planned {
  image: SelectedImage;
  closure: ManifestClosure;
  mediaType: string;
  size: number;
}

interface BlobToWrite {
  digest: string;
  size: number;
}

/** What an export writes: the images, the blobs the target does not have yet (`since`), and its result so far. */
async function plan(store: Storage, images: readonly SelectedImage[], since: ExportOptions['since']): Promise<{ planned: Planned[]; wanted: BlobToWrite[]; result: ExportResult }> {
  const planned: Planned[] = [];
  const blobs = new Map<string, number>();
  for (const image of images) {
    const closure = await manifestClosure(store, image.digest);
    const root = closure.manifests[closure.manifests.length - 1] as ManifestClosure['manifests'][number];
    for (const m of closure.manifests) blobs.set(m.digest, m.size);
    for (const [d, size] of closure.blobs) {
      const s = await store.blobs.stat(d);
      if (!s) throw new Error(`${image.name}: blob ${d} is missing from the store`);
      if (s.size !== size) throw new Error(`${image.name}: blob ${d} is ${s.size} bytes in the store, the manifest says ${size}`);
      blobs.set(d, size);
    }
    planned.push({ image, closure, mediaType: root.mediaType, size: root.size });
  }
  const wanted = [...blobs].filter(([digest]) => !since?.has(digest)).map(([digest, size]) => ({ digest, size }));
  const result: ExportResult = { images: planned.length, blobsWritten: 0, bytesWritten: 0, blobsPresent: 0, blobsOmitted: blobs.size - wanted.length };
  return { planned, wanted, result };
}

function refName(image: SelectedImage): string {
  return image.tag !== undefined ? `${image.name}:${image.tag}` : `${image.name}@${image.digest}`;
}

interface IndexDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function indexDescriptors(planned: readonly Planned[]): IndexDescriptor[] {
  return planned.map((p) => {
    const annotations: Record<string, string> = { [ANNOTATION_IMAGE_NAME]: refName(p.image) };
    if (p.image.tag !== undefined) annotations[ANNOTATION_REF_NAME] = p.image.tag;
    return { mediaType: p.mediaType, digest: p.image.digest, size: p.size, annotations };
  });
}

/** A pass-through that fails at the end when the bytes do not hash to digest. */
function verifier(digest: string, onBytes: (n: number) => void): Transform {
  const parsed = requireDigest(digest);
  const hash = newHash(parsed.algorithm);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      onBytes(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      const actual = `${parsed.algorithm}:${hash.digest('hex')}`;
      cb(actual === digest ? null : new Error(`blob ${digest} in the store hashes to ${actual}: the store is damaged`));
    },
  });
}

const OCI_LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

// --- oci-dir ---------------------------------------------------------------------------------

export async function exportOciDir(store: Storage, images: readonly SelectedImage[], dir: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const { planned, wanted, result } = await plan(store, images, opts.since);
  await mkdir(join(dir, 'blobs'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), OCI_LAYOUT);
  const progress = (opts.progress ?? silentProgress)(`export ${dir}`, wanted.reduce((n, b) => n + b.size, 0));
  try {
    for (const b of wanted) {
      const target = join(dir, blobPath(b.digest));
      const have = await stat(target).catch(() => undefined);
      if (have?.isFile() && have.size === b.size) {
        result.blobsPresent++;
        progress.add(b.size);
        continue;
      }
      await copyVerified(store, b.digest, target, (n) => progress.add(n));
      result.blobsWritten++;
      result.bytesWritten += b.size;
    }
  } finally {
    progress.stop();
  }
  await writeIndex(dir, indexDescriptors(planned));
  return result;
}

async function copyVerified(store: Storage, digest: string, target: string, onBytes: (n: number) => void): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${requireDigest(digest).hex}.partial`);
  try {
    await pipeline(await openBlob(store.blobs, digest), verifier(digest, onBytes), createWriteStream(tmp));
    await fsyncPath(tmp);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** index.json, merged with the one already there: an image of the same name is replaced. */
async function writeIndex(dir: string, added: IndexDescriptor[]): Promise<void> {
  const path = join(dir, 'index.json');
  let existing: IndexDescriptor[] = [];
  try {
    const parsed = JSON.parse(await readText(path)) as { manifests?: IndexDescriptor[] };
    existing = Array.isArray(parsed.manifests) ? parsed.manifests : [];
  } catch {
    existing = [];
  }
  const names = new Set(added.map((d) => d.annotations?.[ANNOTATION_IMAGE_NAME]));
  const kept = existing.filter((d) => !names.has(d.annotations?.[ANNOTATION_IMAGE_NAME]));
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...kept, ...added] };
  const tmp = join(dir, '.index.json.partial');
  await writeFile(tmp, JSON.stringify(index, null, 2));
  await rename(tmp, path);
  await fsyncPath(dir);
}

async function readText(path: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream(path)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// --- docker-tar ------------------------------------------------------------------------------

interface LegacyEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** The image manifest of a planned image that manifest.json lists: the platform's child for an index. */
function platformManifest(p: Planned, platform: string): ManifestClosure['manifests'][number] {
  const root = p.closure.manifests[p.closure.manifests.length - 1] as ManifestClosure['manifests'][number];
  if (!isIndexMediaType(root.mediaType)) return root;
  const [os, arch, variant] = platform.split('/');
  const children = root.refs.children;
  const match = children.find((c) => c.platform?.os === os && c.platform?.architecture === arch && (variant === undefined || c.platform?.variant === variant)) ?? children[0];
  const found = p.closure.manifests.find((m) => m.digest === match?.digest);
  if (!found || isIndexMediaType(found.mediaType)) throw new Error(`${refName(p.image)}: no image manifest for platform ${platform}`);
  return found;
}

function legacyManifest(planned: readonly Planned[], platform: string): { entries: LegacyEntry[]; repositories: Record<string, Record<string, string>> } {
  const byManifest = new Map<string, LegacyEntry>();
  const repositories: Record<string, Record<string, string>> = {};
  for (const p of planned) {
    const m = platformManifest(p, platform);
    const [config, ...layers] = m.refs.blobs;
    if (!config) continue;
    let entry = byManifest.get(m.digest);
    if (!entry) {
      entry = { Config: blobPath(config.digest), RepoTags: [], Layers: layers.map((l) => blobPath(l.digest)) };
      byManifest.set(m.digest, entry);
    }
    if (p.image.tag !== undefined) {
      entry.RepoTags.push(`${p.image.name}:${p.image.tag}`);
      const top = layers[layers.length - 1];
      if (top) (repositories[p.image.name] ??= {})[p.image.tag] = requireDigest(top.digest).hex;
    }
  }
  return { entries: [...byManifest.values()], repositories };
}

/** Writes the tarball to a file (via a temp file renamed at the end) or to a stream ('-' is stdout). */
export async function exportDockerTar(store: Storage, images: readonly SelectedImage[], output: string | Writable, opts: ExportOptions = {}): Promise<ExportResult> {
  const { planned, wanted, result } = await plan(store, images, opts.since);
  const legacy = legacyManifest(planned, opts.platform ?? 'linux/amd64');
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: indexDescriptors(planned) };

  const toFile = typeof output === 'string' && output !== '-';
  const tmp = toFile ? `${output}.partial` : undefined;
  const sink: Writable = tmp ? createWriteStream(tmp) : typeof output === 'string' ? process.stdout : output;
  const pack = tar.pack();
  const piping = pipeline(pack as unknown as NodeJS.ReadableStream, sink);
  const progress = (opts.progress ?? silentProgress)(`export ${toFile ? output : 'tarball'}`, wanted.reduce((n, b) => n + b.size, 0));
  try {
    const small = (name: string, text: string): Promise<void> => addEntry(pack, name, Buffer.from(text));
    await small('oci-layout', OCI_LAYOUT);
    await small('index.json', JSON.stringify(index));
    await small('manifest.json', JSON.stringify(legacy.entries));
    await small('repositories', JSON.stringify(legacy.repositories));
    for (const b of wanted) {
      await streamEntry(pack, blobPath(b.digest), b.size, store, b.digest, (n) => progress.add(n));
      result.blobsWritten++;
      result.bytesWritten += b.size;
    }
    pack.finalize();
    await piping;
    if (tmp) {
      await fsyncPath(tmp);
      await rename(tmp, output as string);
    }
  } catch (e) {
    pack.destroy(e as Error);
    await piping.catch(() => {});
    if (tmp) await rm(tmp, { force: true });
    throw e;
  } finally {
    progress.stop();
  }
  return result;
}

const HEADER = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 };

function addEntry(pack: tar.Pack, name: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ ...HEADER, name, size: bytes.length }, bytes, (err) => (err ? reject(err) : resolve()));
  });
}

async function streamEntry(pack: tar.Pack, name: string, size: number, store: Storage, digest: string, onBytes: (n: number) => void): Promise<void> {
  let done!: (err?: Error | null) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = (err) => (err ? reject(err) : resolve());
  });
  const entry = pack.entry({ ...HEADER, name, size }, (err) => done(err));
  const parsed = requireDigest(digest);
  const hash = newHash(parsed.algorithm);
  try {
    for await (const chunk of await openBlob(store.blobs, digest)) {
      hash.update(chunk as Buffer);
      onBytes((chunk as Buffer).length);
      if (!entry.write(chunk as Buffer)) await once(entry as unknown as NodeJS.EventEmitter, 'drain');
    }
    const actual = `${parsed.algorithm}:${hash.digest('hex')}`;
    if (actual !== digest) throw new Error(`blob ${digest} in the store hashes to ${actual}: the store is damaged`);
  } catch (e) {
    entry.destroy(e as Error);
    throw e;
  }
  (entry as unknown as { end(): void }).end();
  await finished;
}
