/**
 * A manifest fetched from upstream starts its image's blobs before it is stored: storing it is
 * four writes (0.1-0.35 s on a loaded machine, small-docker), the link idle all that time.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../lib/log/logger.ts';
import { MirrorRegistry } from '../../../lib/mirror/mirror-registry.ts';
import type { ServedManifest } from '../../../lib/mirror/prefetch.ts';
import type { Transfers } from '../../../lib/mirror/transfers.ts';
import type { UpstreamPort } from '../../../lib/mirror/upstream-port.ts';
import { LocalRegistry } from '../../../lib/registry/local.ts';
import { openStore } from '../../../lib/storage/store.ts';

const digestOf = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('a manifest fetched from upstream', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-manifest-prefetch-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('starts the prefetch of its blobs before it is stored, and is served once stored', async () => {
    const store = await openStore(root);
    const local = new LocalRegistry(store);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('config'), size: 947 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf('layer'), size: 4 << 20 }],
    }));
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const upstream = {
      getManifest: async () => ({ bytes: manifest, mediaType, digest: digestOf(manifest) }),
    } as unknown as UpstreamPort;
    // The store is slow: the manifest's writes wait until the test lets them go.
    let storing = false;
    let startedStoring: () => void = () => {};
    const storingStarted = new Promise<void>((resolve) => { startedStoring = resolve; });
    let letStore: () => void = () => {};
    const gate = new Promise<void>((resolve) => { letStore = resolve; });
    const storeManifest = local.storeManifest.bind(local);
    local.storeManifest = async (...args) => {
      storing = true;
      startedStoring();
      await gate;
      return storeManifest(...args);
    };
    const served: Array<{ at: 'storing' | 'stored'; image: ServedManifest }> = [];
    let stored = false;
    const mirror = new MirrorRegistry({
      local,
      storage: store,
      routing: { upstreams: { hub: { url: 'https://hub.invalid', kind: 'registry', hosts: [] } }, rewrite: [], defaultUpstream: 'hub' },
      upstreams: new Map([['hub', upstream]]),
      transfers: {} as Transfers,
      logger: silentLogger,
      manifestTtlMs: 60_000,
      prefetch: {
        manifestServed: (image) => served.push({ at: stored ? 'stored' : 'storing', image }),
        asked: () => false,
      },
    });
    const answer = mirror.getManifest('bench/small', 'v1');
    // Reaching the store takes the fs reads before it (the thread pool's pace, not a number of turns).
    await Promise.race([storingStarted, new Promise((r) => setTimeout(r, 5000).unref())]);
    assert.ok(storing, 'the manifest is being stored');
    assert.equal(served.length, 1, 'the prefetch started while the manifest was being stored');
    assert.equal(served[0]!.at, 'storing');
    assert.equal(served[0]!.image.cache, 'hub/bench/small');
    assert.deepEqual(served[0]!.image.bytes, manifest);
    letStore();
    const m = await answer;
    stored = true;
    assert.equal(m.digest, digestOf(manifest));
    assert.deepEqual(await local.getManifest('hub/bench/small', 'v1').then((r) => r.bytes), manifest, 'stored under the tag as before');
  });
});
