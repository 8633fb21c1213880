/**
 * The sizes of the blobs that manifests served from a cache repository list, so a GET of one of
 * them starts its transfer at once instead of asking the upstream first (a HEAD costs a round trip
 * over the slow link per layer, and skopeo pulls layers one after another). A manifest of that
 * very repository listing the digest is also what confirms the blob belongs to it. Bounded: the
 * oldest entries go first; a size not known here is asked upstream as before.
 */
import { parseManifest } from '../oci/manifest.ts';

export class DescriptorSizes {
  private readonly sizes = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  /** Records the config and layer sizes of a manifest served from `repository` (an index lists none). */
  learn(repository: string, bytes: Buffer, mediaType: string): void {
    let blobs;
    try {
      ({ blobs } = parseManifest(bytes, mediaType));
    } catch {
      return;
    }
    for (const b of blobs) {
      const key = `${repository}@${b.digest}`;
      this.sizes.delete(key);
      this.sizes.set(key, b.size);
    }
    for (const oldest of this.sizes.keys()) {
      if (this.sizes.size <= this.max) break;
      this.sizes.delete(oldest);
    }
  }

  /** The size a manifest of `repository` gave for `digest`, if one was served. */
  get(repository: string, digest: string): number | undefined {
    return this.sizes.get(`${repository}@${digest}`);
  }
}
