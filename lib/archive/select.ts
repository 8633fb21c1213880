/** Which images an export takes: references as users write them, or every tag of every local repository. */
import { RegistryError } from '../oci/errors.ts';
import { isDigest } from '../oci/digest.ts';
import { requireName } from '../oci/names.ts';
import type { Storage } from '../storage/storage.ts';
import { splitNameTag } from './naming.ts';

export interface SelectedImage {
  name: string;
  /** Absent for an image asked for by digest. */
  tag?: string;
  digest: string;
}

export interface SelectOptions {
  /** With no references: also the pull-through cache's repositories. */
  includeCache?: boolean;
}

/**
 * `name:tag`, `name@sha256:...` or `name` (every tag of it); with no reference, every tag of
 * every local repository (and cached ones with includeCache).
 */
export async function selectImages(store: Storage, refs: readonly string[], opts: SelectOptions = {}): Promise<SelectedImage[]> {
  const out: SelectedImage[] = [];
  const allTags = async (name: string): Promise<void> => {
    for (const tag of await store.repositories.listTags(name)) {
      const digest = await store.repositories.getTag(name, tag);
      if (digest) out.push({ name, tag, digest });
    }
  };
  if (refs.length === 0) {
    for (const name of await store.repositories.listRepositories()) {
      const origin = await store.repositories.getOrigin(name);
      if (origin === 'cache' && !opts.includeCache) continue;
      await allTags(name);
    }
    return out;
  }
  for (const ref of refs) {
    const at = ref.indexOf('@');
    if (at >= 0) {
      const name = requireName(ref.slice(0, at));
      const digest = ref.slice(at + 1);
      if (!isDigest(digest)) throw new RegistryError('DIGEST_INVALID', `invalid digest in ${JSON.stringify(ref)}`);
      if (!(await store.repositories.getManifestMeta(name, digest))) throw new RegistryError('MANIFEST_UNKNOWN', `${ref}: no such manifest in the store`);
      out.push({ name, digest });
      continue;
    }
    const { name, tag } = splitNameTag(ref);
    requireName(name);
    if (tag === undefined) {
      const before = out.length;
      await allTags(name);
      if (out.length === before) throw new RegistryError('NAME_UNKNOWN', `${ref}: no tagged image in the store`);
      continue;
    }
    const digest = await store.repositories.getTag(name, tag);
    if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', `${ref}: no such tag in the store`);
    out.push({ name, tag, digest });
  }
  return out;
}
