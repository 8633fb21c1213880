import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { afterFill, CacheAccounting } from '../../lib/storage/eviction.ts';
import { manifestRefs } from '../../lib/storage/references.ts';
import type { FsStorage } from '../../lib/storage/store.ts';
import { putImage, sha256, syntheticImage, tempStore, type SyntheticImage } from '../archive/fixtures.ts';

async function setAccess(store: FsStorage, digests: string[], msAgo: number): Promise<void> {
  const t = new Date(Date.now() - msAgo);
  for (const d of digests) await utimes(store.paths.blob(d), t, t);
}

function imageBlobs(image: SyntheticImage, manifest: string): string[] {
  return [manifest, image.configDigest, ...image.layers.map(sha256)];
}

function imageBytes(image: SyntheticImage): number {
  return [image.config, ...image.layers].reduce((n, b) => n + b.length, 0);
}

/** Every manifest of every repository has all its blobs. */
async function assertConsistent(store: FsStorage): Promise<void> {
  for (const repo of await store.repositories.listRepositories()) {
    for (const digest of await store.repositories.listManifests(repo)) {
      const bytes = await store.blobs.readBytes(digest);
      const refs = manifestRefs(bytes);
      for (const b of refs.blobs) assert.ok(await store.blobs.has(b.digest), `${repo}@${digest} lost ${b.digest}`);
      for (const c of refs.children) assert.ok(await store.repositories.getManifestMeta(repo, c.digest), `${repo}@${digest} lost child ${c.digest}`);
    }
    for (const tag of await store.repositories.listTags(repo)) {
      const d = await store.repositories.getTag(repo, tag);
      assert.ok(d && (await store.repositories.getManifestMeta(repo, d)), `${repo}:${tag} points at nothing`);
    }
  }
}

describe('cache eviction', () => {
  let ctx: Awaited<ReturnType<typeof tempStore>>;
  beforeEach(async () => {
    ctx = await tempStore();
  });
  afterEach(async () => {
    await ctx.cleanup();
  });

  it('evicts the least recently used cached images under maxBytes, keeps the store consistent and never touches local content', async () => {
    const local = await syntheticImage('local', 2);
    const localDigest = await putImage(ctx.store, 'lokolla/pinned', '1', local);
    const cached: Array<{ image: SyntheticImage; digest: string; name: string }> = [];
    for (let i = 0; i < 4; i++) {
      const image = await syntheticImage(`cached-${i}`, 2);
      // The oldest cached image shares its base layer with the pinned one.
      if (i === 0) image.layers[0] = local.layers[0] as Buffer;
      const name = `hub/img${i}`;
      cached.push({ image, name, digest: await putImage(ctx.store, name, 'latest', image, 'cache') });
    }
    for (const [i, c] of cached.entries()) await setAccess(ctx.store, imageBlobs(c.image, c.digest), (10 - i) * 60_000);
    const perImage = imageBytes(cached[3]!.image);
    const cache = await CacheAccounting.open(ctx.store, { maxBytes: 2 * perImage + 3000 });
    // The layer shared with local content is pinned, so it is not cache.
    assert.ok(cache.totalBytes > 3 * perImage, `${cache.totalBytes}`);
    const report = await cache.evictIfNeeded();
    assert.deepEqual(report.evictedManifests, [`hub/img0@${cached[0]!.digest}`, `hub/img1@${cached[1]!.digest}`]);
    assert.ok(cache.totalBytes <= 2 * perImage + 3000);
    await assertConsistent(ctx.store);
    for (const d of imageBlobs(local, localDigest)) assert.ok(await ctx.store.blobs.has(d), `local ${d} was deleted`);
    assert.equal(await ctx.store.repositories.getTag('lokolla/pinned', '1'), localDigest);
    for (const c of cached.slice(2)) assert.equal(await ctx.store.repositories.getTag(c.name, 'latest'), c.digest);
    for (const c of cached.slice(0, 2)) {
      assert.equal(await ctx.store.repositories.getTag(c.name, 'latest'), undefined);
      assert.equal(await ctx.store.blobs.has(c.image.configDigest), false);
    }
  });

  it('evicts by last access: an image used recently outlives an older unused one', async () => {
    const images: Array<{ image: SyntheticImage; digest: string }> = [];
    for (let i = 0; i < 3; i++) {
      const image = await syntheticImage(`lru-${i}`, 1);
      images.push({ image, digest: await putImage(ctx.store, `hub/lru${i}`, 'latest', image, 'cache') });
    }
    for (const [i, c] of images.entries()) await setAccess(ctx.store, imageBlobs(c.image, c.digest), (10 - i) * 60_000);
    const cache = await CacheAccounting.open(ctx.store, { maxBytes: Number.MAX_SAFE_INTEGER });
    cache.recordAccess(images[0]!.digest);
    const total = cache.totalBytes;
    const smaller = new CacheAccounting(ctx.store, { maxBytes: total - 1, lowWaterRatio: 1 });
    await smaller.rebuild();
    smaller.recordAccess(images[0]!.digest);
    const report = await smaller.evictIfNeeded();
    assert.deepEqual(report.evictedManifests, [`hub/lru1@${images[1]!.digest}`]);
    await assertConsistent(ctx.store);
  });

  it('evicts an index with its children, never leaving an index without a child', async () => {
    const { LocalRegistry } = await import('../../lib/registry/local.ts');
    const { MEDIA } = await import('../../lib/oci/media-types.ts');
    const image = await syntheticImage('idx-child', 1);
    const child = await putImage(ctx.store, 'hub/multi', 'amd64', image, 'cache');
    const childSize = (await ctx.store.blobs.stat(child))!.size;
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.dockerManifest, digest: child, size: childSize }] }));
    await new LocalRegistry(ctx.store).storeManifest('hub/multi', 'latest', index, MEDIA.ociIndex, 'cache');
    await setAccess(ctx.store, imageBlobs(image, child), 60_000);
    const cache = await CacheAccounting.open(ctx.store, { maxBytes: 1 });
    const report = await cache.evictIfNeeded();
    assert.equal(report.evictedManifests.length, 2);
    assert.deepEqual(await ctx.store.repositories.listManifests('hub/multi'), []);
    await assertConsistent(ctx.store);
  });

  it('counts fills reported by the mirror and evicts when they pass the limit', async () => {
    const first = await syntheticImage('fill-0', 1);
    const firstDigest = await putImage(ctx.store, 'hub/f0', 'latest', first, 'cache');
    await setAccess(ctx.store, imageBlobs(first, firstDigest), 60_000);
    const cache = await CacheAccounting.open(ctx.store, { maxBytes: imageBytes(first) + 2000 });
    assert.equal((await cache.evictIfNeeded()).evictedManifests.length, 0);
    const second = await syntheticImage('fill-1', 1);
    await putImage(ctx.store, 'hub/f1', 'latest', second, 'cache');
    const report = await afterFill(cache, sha256(second.layers[0] as Buffer), (second.layers[0] as Buffer).length);
    assert.deepEqual(report?.evictedManifests, [`hub/f0@${firstDigest}`]);
    await assertConsistent(ctx.store);
    assert.equal(await afterFill(undefined, 'sha256:x', 1), undefined);
  });
});
