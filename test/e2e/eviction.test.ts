/** cache.maxBytes in a running mirror: pull-through content is evicted, pushed content never is. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectGarbage } from '../../lib/storage/gc.ts';
import { manifestRefs } from '../../lib/storage/references.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

const MiB = 1 << 20;

describe('cache limit in a running mirror', function () {
  this.timeout(120_000);
  let upstream: ReferenceRegistry;
  let mirror: TestMirror;
  const cached: BuiltImage[] = [];
  let pinned: BuiltImage;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'ferry-evict-'));
    upstream = await startReferenceRegistry({ name: 'eviction-upstream' });
    for (let i = 0; i < 4; i++) {
      const image = await buildImage({ seed: `eviction/${i}`, layers: [3 * MiB] });
      cached.push(image);
      await pushImage(image, upstream.host, `cached/img${i}`, 'v1');
    }
    pinned = await buildImage({ seed: 'eviction/pinned', layers: [4 * MiB] });
    mirror = await startTestMirror({
      upstreams: { up: { url: upstream.url } },
      defaultUpstream: 'up',
      cache: { maxBytes: 8 * MiB },
    });
    await pushImage(pinned, mirror.host, 'lokolla/pinned', 'v1');
  });

  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('keeps pull-through content under maxBytes, leaves pushed content alone, and the store stays consistent', async () => {
    for (let i = 0; i < cached.length; i++) {
      await skopeoCopy(`docker://${mirror.host}/cached/img${i}:v1`, `dir:${join(scratch, `out-${i}`)}`);
      // Eviction runs after each fill; give the last one a moment to settle.
      await new Promise((r) => setTimeout(r, 200));
    }
    const store = mirror.mirror.store;
    const layerOf = (im: BuiltImage): string => im.layers[0]!.digest;
    // 4 x 3 MiB pulled through an 8 MiB limit: the oldest are gone, the newest is there.
    assert.ok(await store.blobs.has(layerOf(cached[3]!)), 'the most recent pull is cached');
    assert.equal(await store.blobs.has(layerOf(cached[0]!)), false, 'the least recently used image was evicted');
    // Pushed content is pinned whatever the limit.
    assert.ok(await store.blobs.has(layerOf(pinned)));
    assert.ok(await store.blobs.has(pinned.configDigest));
    // Every manifest still linked in any repository has all its blobs.
    for (const repo of await store.repositories.listRepositories()) {
      for (const digest of await store.repositories.listManifests(repo)) {
        const meta = await store.repositories.getManifestMeta(repo, digest);
        const refs = manifestRefs(await store.blobs.readBytes(digest), meta?.mediaType);
        for (const blob of refs.blobs) assert.ok(await store.blobs.has(blob.digest), `${repo}@${digest} keeps ${blob.digest}`);
      }
    }
    // gc agrees: nothing referenced is missing.
    const report = await collectGarbage(store, { graceMs: 0, dryRun: true });
    assert.deepEqual(report.danglingManifests, []);
  });

  it('pulls an evicted image again from upstream', async () => {
    await skopeoCopy(`docker://${mirror.host}/cached/img0:v1`, `dir:${join(scratch, 'again')}`);
    assert.ok(await mirror.mirror.store.blobs.has(cached[0]!.layers[0]!.digest));
  });
});
