/**
 * What replicas on one bucket share besides the transfers (issue 15.2): tag revalidation and the
 * upload session limits (two mirror services in this process, each with its own data dir, on one
 * RGW bucket), cache eviction judged on the cluster's cached bytes and accesses, two replicas
 * evicting at once (each replica's S3Storage and CacheAccounting, as server/mirror.ts wires them),
 * and `ferry gc` over the bucket.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheAccounting, afterFill } from '../../lib/storage/eviction.ts';
import { collectGarbage } from '../../lib/storage/gc.ts';
import { readManifestRefs } from '../../lib/storage/references.ts';
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import { putImage, sha256, syntheticImage, type SyntheticImage } from '../archive/fixtures.ts';
import { MirrorRegistry } from '../../lib/mirror/mirror-registry.ts';
import type { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { useRgwBucket } from '../helpers/ceph.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startTestMirrorsOnRgw, type TestMirror } from '../e2e/mirror-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { linkConfig, readBlob, startUpstream, type Upstream } from '../e2e/transfer-fixture.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { REPO_ROOT, ferryArgs } from '../helpers/ferry-entry.ts';
import { run, waitFor } from '../helpers/processes.ts';
import { collect } from '../storage/expect.ts';

interface Cached {
  name: string;
  image: SyntheticImage;
  digest: string;
}

/** The blobs of an image: manifest, config, layers. */
const blobsOf = (c: Cached): string[] => [c.digest, c.image.configDigest, ...c.image.layers.map(sha256)];

async function storedBytes(store: Storage, digests: readonly string[]): Promise<number> {
  let n = 0;
  for (const d of new Set(digests)) n += (await store.blobs.stat(d))?.size ?? 0;
  return n;
}

/** Touches as a replica serving the blobs does, and waits until the touch is in the bucket. */
async function serve(cache: CacheAccounting, store: Storage, digests: readonly string[]): Promise<void> {
  const before = new Map<string, number>();
  for (const d of digests) before.set(d, (await store.blobs.stat(d))?.touchedAt ?? 0);
  for (const d of digests) cache.recordAccess(d);
  await waitFor(async () => {
    for (const d of digests) if (((await store.blobs.stat(d))?.touchedAt ?? 0) <= (before.get(d) ?? 0)) return false;
    return true;
  }, 10_000, 'the touches in the bucket');
}

/**
 * Every manifest has its blobs and children, every tag its manifest, and every blob in the bucket
 * is used by a manifest or linked into a local repository (nothing evicted half way, nothing leaked).
 */
async function assertConsistent(store: Storage): Promise<void> {
  const used = new Set<string>();
  for (const repo of await store.repositories.listRepositories()) {
    for (const digest of await store.repositories.listManifests(repo)) {
      used.add(digest);
      const refs = await readManifestRefs(store, digest);
      assert.ok(refs, `${repo}@${digest} lost its manifest blob`);
      for (const b of refs.blobs) {
        used.add(b.digest);
        assert.ok(await store.blobs.has(b.digest), `${repo}@${digest} lost ${b.digest}`);
      }
      for (const c of refs.children) assert.ok(await store.repositories.getManifestMeta(repo, c.digest), `${repo}@${digest} lost child ${c.digest}`);
    }
    for (const tag of await store.repositories.listTags(repo)) {
      const d = await store.repositories.getTag(repo, tag);
      assert.ok(d && (await store.repositories.getManifestMeta(repo, d)), `${repo}:${tag} points at nothing`);
    }
    if ((await store.repositories.getOrigin(repo)) !== 'cache') for (const b of await store.repositories.listBlobs(repo)) used.add(b);
  }
  const leaked = (await collect(store.blobs.list())).map((b) => b.digest).filter((d) => !used.has(d));
  assert.deepEqual(leaked, [], 'blobs nothing uses were left in the bucket');
}

describe('replicas on one bucket: shared cache state and gc (issue 15.2)', function () {
  this.timeout(60_000);
  const { rgw, root, fresh } = useRgwBucket();

  /** Two replicas' stores on a fresh part of the bucket. */
  function replicaStores(): [S3Storage, S3Storage] {
    const bucket = fresh();
    return [new S3Storage(bucket), new S3Storage(bucket)];
  }

  async function cacheImages(store: Storage, seeds: string[], shareFirstLayer = false): Promise<Cached[]> {
    const out: Cached[] = [];
    for (const seed of seeds) {
      const image = await syntheticImage(seed, 2);
      if (shareFirstLayer && out[0]) image.layers[0] = out[0].image.layers[0] as Buffer;
      const name = `hub/${seed}`;
      out.push({ name, image, digest: await putImage(store, name, 'latest', image, 'cache') });
    }
    return out;
  }

  describe('two mirror services on the bucket', () => {
    const teardown = new Teardown();
    let dir: string;
    let upstream: Upstream;
    let counted: CountingProxy;
    let bucket: S3Bucket;
    let a: TestMirror;
    let b: TestMirror;
    const limits = { uploadSessionsPerClient: 2 };
    /** Images of 24 KiB (a layer) the eviction case pulls, and the cache limit: 3.5 of them. */
    const EVICTION_LAYER = 24 * 1024;
    const evictionImages: Array<{ repository: string; image: BuiltImage }> = [];

    before(async () => {
      dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-shared-state-')), (d) => rm(d, { recursive: true, force: true }));
      upstream = teardown.add(await startUpstream({ layers: [1000], seed: 'shared-state', runnable: false }), (u) => u.stop());
      counted = teardown.add(await startCountingProxy(upstream.registry.url), (p) => p.close());
      for (const i of [1, 2, 3, 4]) {
        const image = await buildImage({ layers: [EVICTION_LAYER], seed: `shared-evict-${i}`, format: 'docker' });
        await pushImage(image, upstream.registry.host, `evict/img${i}`, 'v1');
        evictionImages.push({ repository: `evict/img${i}`, image });
      }
      bucket = fresh();
      const config = {
        ...linkConfig(counted.url, undefined),
        cache: { manifestTtlSeconds: 60, maxBytes: Math.floor(3.5 * (EVICTION_LAYER + 2048)) },
        limits,
      };
      [a, b] = await startTestMirrorsOnRgw(rgw(), { dir, teardown, bucket: root().bucket, prefix: bucket.prefix, configs: [config, config] });
    });
    after(() => teardown.run());

    const manifestPath = (): string => `/v2/${upstream.repository}/manifests/${upstream.tag}`;
    async function getTag(m: TestMirror): Promise<string | null> {
      const res = await fetch(`${m.url}${manifestPath()}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      return res.headers.get('docker-content-digest');
    }

    it('revalidates a tag upstream once for the cluster: the other replica trusts it within the interval', async () => {
      const asked = (): number => counted.count('HEAD', manifestPath()) + counted.count('GET', manifestPath());
      assert.equal(await getTag(a), upstream.image.manifestDigest);
      assert.equal(asked(), 1);
      assert.equal(await getTag(b), upstream.image.manifestDigest);
      assert.equal(asked(), 1, 'B asked upstream for a tag A had just fetched');
      // The tag's last check, aged past the interval (as time would): A revalidates it.
      const tagKey = `repositories/${MirrorRegistry.cacheName('up', upstream.repository)}/_tags/${upstream.tag}`;
      await bucket.put(tagKey, upstream.image.manifestDigest, { metadata: { 'checked-at': String(Date.now() - 120_000) } });
      assert.equal(await getTag(a), upstream.image.manifestDigest);
      assert.equal(counted.count('HEAD', manifestPath()), 1, 'A revalidated the aged tag');
      assert.equal(await getTag(b), upstream.image.manifestDigest);
      assert.equal(asked(), 2, 'B asked upstream again for a tag A had just revalidated');
    });

    it('evicts by the cluster\'s accesses: the image B serves outlives an older one A alone pulled', async () => {
      const pull = async (m: TestMirror, { repository, image }: { repository: string; image: BuiltImage }): Promise<void> => {
        const res = await fetch(`${m.url}/v2/${repository}/manifests/v1`, { headers: { accept: image.mediaType } });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
        for (const d of [image.configDigest, ...image.layers.map((l) => l.digest)]) {
          const read = await readBlob(m.url, repository, d);
          assert.deepEqual([read.status, read.digest], [200, d]);
        }
      };
      const [img1, img2, img3, img4] = evictionImages as [typeof evictionImages[0], typeof evictionImages[0], typeof evictionImages[0], typeof evictionImages[0]];
      for (const img of [img1, img2, img3]) await pull(a, img);
      // B serves the oldest of A's fills; its touches reach the bucket.
      const layer1 = img1.image.layers[0]!.digest;
      const filled = (await a.mirror.store.blobs.stat(layer1))!.touchedAt;
      await pull(b, img1);
      await waitFor(async () => ((await a.mirror.store.blobs.stat(layer1))?.touchedAt ?? 0) > filled, 10_000, 'B\'s touch of the layer in the bucket');
      await pull(a, img4);
      const cached = (img: typeof img1): Promise<boolean> => a.mirror.store.repositories.getTag(`up/${img.repository}`, 'v1').then((d) => d !== undefined);
      // Unlinked first, its blobs deleted once every victim is unlinked.
      await waitFor(async () => !(await a.mirror.store.blobs.has(img2.image.layers[0]!.digest)), 10_000, 'A\'s eviction of img2');
      assert.deepEqual(await Promise.all([img1, img2, img3, img4].map(cached)), [true, false, true, true], 'the image B served was evicted');
    });

    it('holds the upload session limits across replicas', async () => {
      const start = async (m: TestMirror, repo: string): Promise<{ status: number; location: string }> => {
        const res = await fetch(`${m.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
        await res.arrayBuffer();
        return { status: res.status, location: res.headers.get('location') ?? '' };
      };
      const opened = [await start(a, 'app/one'), await start(a, 'app/two')];
      assert.deepEqual(opened.map((o) => o.status), [202, 202]);
      assert.equal((await start(b, 'app/three')).status, 429, 'B let the client open more sessions than the limit');
      assert.equal(await b.mirror.store.uploads.count(), limits.uploadSessionsPerClient, 'B counts the sessions A opened');
      // Cancelled on B: A counts them no more.
      for (const o of opened) assert.equal((await fetch(`${b.url}${o.location}`, { method: 'DELETE' })).status, 204);
      const again = [await start(a, 'app/one'), await start(b, 'app/two')];
      assert.deepEqual(again.map((o) => o.status), [202, 202]);
      assert.equal((await start(a, 'app/three')).status, 429);
      for (const o of again) await fetch(`${a.url}${o.location}`, { method: 'DELETE' });
    });
  });

  describe('cache eviction (cache.maxBytes) over the bucket', () => {
    it('keeps an image another replica serves, evicting older ones this replica never served', async () => {
      const [a, b] = replicaStores();
      const images = await cacheImages(a, ['ev-a', 'ev-b', 'ev-c', 'ev-d']);
      const perImage = await storedBytes(a, blobsOf(images[3]!));
      // Both replicas run before the accesses and fills below, as they do in a cluster.
      const opts = { maxBytes: Math.floor(3.5 * perImage), lowWaterRatio: 1, shared: true };
      const cacheA = await CacheAccounting.open(a, opts);
      const cacheB = await CacheAccounting.open(b, opts);
      await serve(cacheB, b, blobsOf(images[0]!));
      // A fills a fifth image: 5 images over a limit of 3.5.
      const [fifth] = await cacheImages(a, ['ev-e']);
      const report = await afterFill(cacheA, fifth!.image.configDigest, fifth!.image.config.length);
      assert.deepEqual(report?.evictedManifests.sort(), [images[1]!, images[2]!].map((c) => `${c.name}@${c.digest}`).sort());
      for (const kept of [images[0]!, images[3]!, fifth!]) assert.equal(await a.repositories.getTag(kept.name, 'latest'), kept.digest, `${kept.name} was evicted`);
      await assertConsistent(a);
    });

    it('counts the bytes other replicas filled, and forgets what they evicted', async () => {
      const [a, b] = replicaStores();
      const [first] = await cacheImages(a, ['cnt-a']);
      const perImage = await storedBytes(a, blobsOf(first!));
      const opts = { maxBytes: Math.floor(2.5 * perImage), lowWaterRatio: 1, shared: true, syncIntervalMs: 0 };
      const cacheA = await CacheAccounting.open(a, opts);
      const cacheB = await CacheAccounting.open(b, opts);
      // B fills two more: three images over 2.5, though A filled only one of them.
      const filledByB = await cacheImages(b, ['cnt-b', 'cnt-c']);
      await serve(cacheB, b, filledByB.flatMap(blobsOf));
      const report = await cacheA.evictIfNeeded();
      assert.deepEqual(report.evictedManifests, [`${first!.name}@${first!.digest}`]);
      assert.equal(cacheA.totalBytes, await storedBytes(a, filledByB.flatMap(blobsOf)));
      await cacheB.evictIfNeeded();
      assert.equal(cacheB.totalBytes, cacheA.totalBytes, 'B counts what A evicted as gone');
      await assertConsistent(a);
    });

    it('touches an access again once touchIntervalMs passed, however short (the bucket adds no interval of its own)', async () => {
      const [a] = replicaStores();
      const [image] = await cacheImages(a, ['touch-again']);
      let now = Date.now();
      const cache = await CacheAccounting.open(a, { maxBytes: Number.MAX_SAFE_INTEGER, shared: true, touchIntervalMs: 1000, now: () => now });
      await serve(cache, a, [image!.digest]);
      now += 1000;
      // The S3 store threw away every touch of a blob within 60 s of its last one.
      await serve(cache, a, [image!.digest]);
    });

    it('two replicas evicting at once evict the least recently used by either, lose nothing a repository uses and leak nothing', async () => {
      const [a, b] = replicaStores();
      const pinned = await syntheticImage('pin', 2);
      const pinnedDigest = await putImage(a, 'lokolla/pinned', '1', pinned);
      // c1 and c2 share a layer; c3 shares one with the pinned image.
      const [c1, c2] = await cacheImages(a, ['two-1', 'two-2'], true);
      const c3image = await syntheticImage('two-3', 2);
      c3image.layers[0] = pinned.layers[0] as Buffer;
      const c3: Cached = { name: 'hub/two-3', image: c3image, digest: await putImage(a, 'hub/two-3', 'latest', c3image, 'cache') };
      const perImage = await storedBytes(a, blobsOf(c1!));
      const opts = { maxBytes: Math.floor(1.5 * perImage), lowWaterRatio: 1, shared: true };
      const cacheA = await CacheAccounting.open(a, opts);
      const cacheB = await CacheAccounting.open(b, opts);
      // A serves c2, then B serves c1: c1 is the cluster's most recent, c3 its least.
      await serve(cacheA, a, blobsOf(c2!));
      await serve(cacheB, b, blobsOf(c1!));
      const [ra, rb] = await Promise.all([cacheA.evictIfNeeded(), cacheB.evictIfNeeded()]);
      const evicted = new Set([...ra.evictedManifests, ...rb.evictedManifests]);
      assert.deepEqual([...evicted].sort(), [c2!, c3].map((c) => `${c.name}@${c.digest}`).sort());
      assert.equal(await a.repositories.getTag(c1!.name, 'latest'), c1!.digest);
      for (const d of blobsOf({ name: 'lokolla/pinned', image: pinned, digest: pinnedDigest })) assert.ok(await a.blobs.has(d), `pinned ${d} was deleted`);
      await assertConsistent(a);
    });
  });

  describe('ferry gc with an S3 config', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ferry-gc-s3-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('removes exactly the unreferenced blobs older than the grace period (dry run, then for real)', async () => {
      const bucket = fresh();
      const store = new S3Storage(bucket);
      const credentialsFile = await rgw().writeCredentialsFile(dir);
      const configFile = join(dir, 'ferry.json');
      await writeFile(configFile, JSON.stringify({ dataDir: join(dir, 'data'), storage: rgw().storageConfig(root().bucket, { credentialsFile, prefix: bucket.prefix }) }));
      const kept = await cacheImages(store, ['gc-kept']);
      await putImage(store, 'app/pushed', '1', await syntheticImage('gc-pushed', 1));
      const orphans = [Buffer.alloc(1000, 1), Buffer.alloc(2345, 2), Buffer.alloc(777, 3)];
      for (const o of orphans) await store.blobs.putBytes(o);
      await store.repositories.linkBlob('app/pushed', sha256(orphans[1]!));
      const all = (await collect(store.blobs.list())).map((x) => x.digest).sort();
      const gc = async (...flags: string[]): Promise<Record<string, unknown>> => {
        const res = await run(process.execPath, [...ferryArgs(), 'gc', '--config', configFile, '--json', ...flags], { cwd: REPO_ROOT, timeoutMs: 30_000 });
        assert.equal(res.code, 0, res.stderr);
        return JSON.parse(res.stdout) as Record<string, unknown>;
      };
      const orphaned = { deletedBlobs: 3, freedBytes: 1000 + 2345 + 777, youngBlobs: 0, youngBytes: 0, removedLinks: 1, danglingManifests: [] };
      const pick = (r: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.keys(orphaned).map((k) => [k, r[k]]));
      const blobsLeft = async (): Promise<string[]> => (await collect(store.blobs.list())).map((x) => x.digest).sort();

      // Within the grace period (the blobs were just written) nothing goes, even for real.
      assert.deepEqual(pick(await collectGarbage(store, { graceMs: 3600_000 }) as unknown as Record<string, unknown>), { ...orphaned, deletedBlobs: 0, freedBytes: 0, youngBlobs: 3, youngBytes: 1000 + 2345 + 777, removedLinks: 0 });
      assert.deepEqual(await blobsLeft(), all);
      assert.deepEqual(pick(await gc('--grace', '0s', '--dry-run')), orphaned);
      assert.deepEqual(await blobsLeft(), all, 'a dry run removes nothing');
      assert.equal(await store.repositories.hasBlob('app/pushed', sha256(orphans[1]!)), true);

      assert.deepEqual(pick(await gc('--grace', '0s')), orphaned);
      const gone = new Set(orphans.map(sha256));
      assert.deepEqual(await blobsLeft(), all.filter((d) => !gone.has(d)));
      assert.equal(await store.repositories.hasBlob('app/pushed', sha256(orphans[1]!)), false);
      for (const d of blobsOf(kept[0]!)) assert.ok(await store.blobs.has(d), `referenced ${d} was removed`);
    });
  });
});
