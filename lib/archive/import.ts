/**
 * `ferry import`: a docker save tarball, an OCI layout (tarred or a directory) into the store as
 * local (pinned) content. Content goes in first, streamed and verified; manifests and tags only
 * after the whole bundle has been read and every name and reference checked, so a bad bundle
 * leaves no tag and no manifest behind (only verified, unreferenced blobs, which gc removes).
 */
import { stat } from 'node:fs/promises';
import { LocalRegistry } from '../registry/local.ts';
import type { Storage } from '../storage/storage.ts';
import { BundleError, type Bundle } from './bundle.ts';
import { DirBundle } from './dir-bundle.ts';
import { importTarget, type NamingOptions } from './naming.ts';
import { planImages, type PlannedImage } from './plan.ts';
import { silentProgress, type ProgressFactory } from './progress.ts';
import { TarBundle } from './tar-bundle.ts';

export interface ImportOptions extends NamingOptions {
  progress?: ProgressFactory;
}

export interface ImportedImage {
  /** The name the bundle gave, if any. */
  source?: string;
  name: string;
  tag: string;
  digest: string;
  mediaType: string;
}

export interface ImportResult {
  file: string;
  images: ImportedImage[];
}

interface Put {
  image: PlannedImage;
  source?: string;
  name: string;
  tag: string;
}

/** Where each image goes; all checked before anything is put. */
export function placeImages(file: string, images: PlannedImage[], opts: NamingOptions): Put[] {
  if (images.length === 0) throw new BundleError(file, 'holds no image');
  if (opts.as !== undefined && images.length > 1) {
    throw new BundleError(file, `--as names one image but the bundle holds ${images.length}; import them with --prefix or the rewrite rules`);
  }
  const puts: Put[] = [];
  for (const image of images) {
    const sources: Array<string | undefined> = image.sources.length > 0 ? image.sources : [undefined];
    for (const source of sources) {
      try {
        const target = importTarget(source, opts);
        const tag = opts.as === undefined && source === undefined && image.tagOnly !== undefined ? image.tagOnly : target.tag;
        puts.push({ image, name: target.name, tag, ...(source !== undefined ? { source } : {}) });
      } catch (e) {
        throw new BundleError(file, (e as Error).message);
      }
    }
  }
  return puts;
}

/** Reads a bundle (its content into the store) and plans its images; puts no manifest yet. */
export async function readBundle(store: Storage, file: string, progress: ProgressFactory = silentProgress): Promise<{ bundle: Bundle; images: PlannedImage[] }> {
  const s = await stat(file).catch(() => undefined);
  if (!s) throw new BundleError(file, 'no such file or directory');
  // A directory is read on demand while planning, so the bar covers both steps.
  const p = progress(`import ${file}`, s.isDirectory() ? 0 : s.size);
  try {
    const bundle = s.isDirectory() ? await DirBundle.open(file, store, (n) => p.add(n)) : await TarBundle.read(file, store, (n) => p.add(n));
    return { bundle, images: await planImages(bundle, store) };
  } finally {
    p.stop();
  }
}

export async function importBundle(store: Storage, file: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const { images } = await readBundle(store, file, opts.progress);
  const puts = placeImages(file, images, opts);
  const registry = new LocalRegistry(store);
  const result: ImportResult = { file, images: [] };
  for (const put of puts) {
    const manifests = put.image.manifests;
    // The bundle's own content, read and verified above, is what the manifests reference: it is
    // in the store, not yet in any repository, so the manifests are stored without a push's check.
    for (const m of manifests.slice(0, -1)) await registry.storeManifest(put.name, m.digest, m.bytes, m.mediaType, 'local');
    const top = manifests[manifests.length - 1];
    if (!top) continue;
    await registry.storeManifest(put.name, put.tag, top.bytes, top.mediaType, 'local');
    result.images.push({ name: put.name, tag: put.tag, digest: top.digest, mediaType: top.mediaType, ...(put.source !== undefined ? { source: put.source } : {}) });
  }
  return result;
}
