/** The bench's data: deterministic images, written once as an OCI layout and pushed with skopeo. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildImage, writeOciLayout, type BuiltImage, type LayerBlob } from '../../test/helpers/oci-image.ts';
import { pushLayout } from '../../test/helpers/skopeo.ts';

const MiB = 1024 * 1024;

// A host-like first component that no upstream serves routes to local content only, so ferry
// with the stock config (defaultUpstream: dockerhub, unreachable here) never goes upstream.
export const PULL_REPO = 'bench.local/pull';
export const BLOBS_REPO = 'bench.local/blobs';
export const TAG = 'latest';

export interface Fixtures {
  /** 5 layers of 40 MiB: what docker pulls. */
  pull: BuiltImage;
  /** Carrier of the single blobs below (pushed as an image so both registries accept them). */
  blobs: BuiltImage;
  blob1M: LayerBlob;
  blob64M: LayerBlob;
  blob1G: LayerBlob;
  layoutDir: string;
  cleanup(): Promise<void>;
}

export async function buildFixtures(): Promise<Fixtures> {
  // Stored gzip (level 0): the registries serve bytes, compression would only slow the build.
  const [pull, blobs] = await Promise.all([
    buildImage({ seed: 'ferry-bench/pull', layers: Array.from({ length: 5 }, () => 40 * MiB) }),
    buildImage({ seed: 'ferry-bench/blobs', layers: [MiB, 64 * MiB, 1024 * MiB] }),
  ]);
  const [blob1M, blob64M, blob1G] = blobs.layers;
  if (!blob1M || !blob64M || !blob1G) throw new Error('blob image has fewer layers than built');
  const layoutDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-layout-'));
  await writeOciLayout(layoutDir, pull, 'pull');
  await writeOciLayout(layoutDir, blobs, 'blobs');
  return { pull, blobs, blob1M, blob64M, blob1G, layoutDir, cleanup: () => rm(layoutDir, { recursive: true, force: true }) };
}

/** Pushes both images to a registry at host (127.0.0.1:PORT). */
export async function pushFixtures(f: Fixtures, host: string): Promise<void> {
  await pushLayout(f.layoutDir, 'pull', host, PULL_REPO, TAG, { timeoutMs: 300_000 });
  await pushLayout(f.layoutDir, 'blobs', host, BLOBS_REPO, TAG, { timeoutMs: 300_000 });
}
