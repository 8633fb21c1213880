/**
 * What a stored manifest references: its config and layers, child manifests (an index), its
 * subject. gc marks from it, eviction and export walk it. Foreign (non-distributable) layers live
 * elsewhere and are never counted.
 */
import { parseManifest, type Descriptor } from '../oci/manifest.ts';
import type { Storage } from './storage.ts';

export interface ManifestRefs {
  mediaType: string;
  /** Config and layer digests (distributable only). */
  blobs: Descriptor[];
  /** Child manifests of an index or manifest list. */
  children: Descriptor[];
  subject?: string;
}

export function isForeignDescriptor(d: Pick<Descriptor, 'mediaType'>): boolean {
  return d.mediaType.includes('foreign') || d.mediaType.includes('nondistributable');
}

/** The references of manifest bytes; throws RegistryError MANIFEST_INVALID when they do not parse. */
export function manifestRefs(bytes: Buffer, mediaType?: string): ManifestRefs {
  const parsed = parseManifest(bytes, mediaType);
  const out: ManifestRefs = {
    mediaType: parsed.mediaType,
    blobs: parsed.blobs.filter((d) => !isForeignDescriptor(d)),
    children: parsed.manifests,
  };
  if (parsed.subject) out.subject = parsed.subject.digest;
  return out;
}

/** The references of a stored manifest; undefined when the blob is missing or is not a manifest. */
export async function readManifestRefs(store: Storage, digest: string): Promise<ManifestRefs | undefined> {
  const bytes = await store.blobs.readBytes(digest).catch(() => undefined);
  if (!bytes) return undefined;
  try {
    return manifestRefs(bytes);
  } catch {
    return undefined;
  }
}

export interface ManifestClosure {
  /** Every manifest of the tree, children before their parents (the order a registry accepts them). */
  manifests: Array<{ digest: string; mediaType: string; size: number; refs: ManifestRefs }>;
  /** Every config and layer, digest -> size from its descriptor. */
  blobs: Map<string, number>;
}

/**
 * The manifest and everything it needs, children first. Throws when a manifest of the tree is
 * missing from the store (the caller asked for something the store cannot give whole).
 */
export async function manifestClosure(store: Storage, digest: string): Promise<ManifestClosure> {
  const out: ManifestClosure = { manifests: [], blobs: new Map() };
  const seen = new Set<string>();
  const visit = async (d: string): Promise<void> => {
    if (seen.has(d)) return;
    seen.add(d);
    const bytes = await store.blobs.readBytes(d).catch(() => undefined);
    if (!bytes) throw new Error(`manifest ${d} is missing from the store`);
    const refs = manifestRefs(bytes);
    for (const child of refs.children) await visit(child.digest);
    for (const b of refs.blobs) out.blobs.set(b.digest, b.size);
    out.manifests.push({ digest: d, mediaType: refs.mediaType, size: bytes.length, refs });
  };
  await visit(digest);
  return out;
}
