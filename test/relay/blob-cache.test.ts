import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayBlobCache } from '../../lib/relay/blob-cache.ts';
import { ChunkLists } from '../../lib/relay/chunk-list.ts';
import { digestOf } from '../../lib/oci/digest.ts';
import { openStore, type FsStorage } from '../../lib/storage/store.ts';

const KiB = 1024;

describe('relay blob cache', () => {
  let dir: string;
  let store: FsStorage;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-relay-cache-'));
    store = await openStore(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const put = async (size: number): Promise<string> => store.blobs.putBytes(randomBytes(size));

  it('deletes the least recently used blobs once over maxBytes, with their chunk lists', async () => {
    const lists = new ChunkLists(store);
    const cache = new RelayBlobCache(store, { maxBytes: 300 * KiB, onEvict: (d) => lists.remove(d) });
    const [a, b, c] = [await put(100 * KiB), await put(100 * KiB), await put(100 * KiB)];
    for (const d of [a, b, c]) await cache.added(d, 100 * KiB);
    await lists.get(a, 64 * KiB);
    cache.accessed(a);
    const d = await put(100 * KiB);
    await cache.added(d, 100 * KiB);
    assert.equal(await store.blobs.has(b), false, 'b was the least recently used');
    for (const x of [a, c, d]) assert.equal(await store.blobs.has(x), true);
    assert.equal(cache.totalBytes, 300 * KiB);
    assert.deepEqual(cache.digests(), [c, a, d]);
    const e = await put(250 * KiB);
    await cache.added(e, 250 * KiB);
    assert.equal(await store.blobs.has(a), false);
    assert.deepEqual(await readdir(store.paths.sidecarsDir(a)), [], 'the evicted blob\'s chunk list went with it');
    assert.deepEqual(cache.digests(), [e]);
  });

  it('keeps a blob larger than the whole cache until the next one arrives', async () => {
    const cache = new RelayBlobCache(store, { maxBytes: 100 * KiB });
    const big = await put(200 * KiB);
    await cache.added(big, 200 * KiB);
    assert.equal(await store.blobs.has(big), true);
    const small = await put(10 * KiB);
    await cache.added(small, 10 * KiB);
    assert.equal(await store.blobs.has(big), false);
    assert.equal(cache.totalBytes, 10 * KiB);
  });

  it('rebuilds its order from blob mtimes at start, leaving manifests out', async () => {
    const [old, recent] = [await put(50 * KiB), await put(50 * KiB)];
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: old, size: 50 * KiB }, layers: [] }));
    const md = await store.blobs.putBytes(manifest);
    await store.repositories.linkManifest('hub/x', md, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length });
    await utimes(store.paths.blob(old), new Date(1000_000), new Date(1000_000));
    const cache = await RelayBlobCache.open(store, { maxBytes: 1024 * KiB });
    assert.deepEqual(cache.digests(), [old, recent]);
    assert.equal(cache.has(md), false);
  });

  it('computes chunk digests once and answers undefined for a blob it does not hold', async () => {
    const lists = new ChunkLists(store);
    const bytes = randomBytes(200 * KiB);
    const d = await store.blobs.putBytes(bytes);
    const list = await lists.get(d, 64 * KiB);
    assert.deepEqual(list, { chunkSize: 64 * KiB, digests: [0, 1, 2, 3].map((i) => digestOf(bytes.subarray(i * 64 * KiB, (i + 1) * 64 * KiB))) });
    await store.blobs.delete(d);
    assert.deepEqual(await lists.get(d, 64 * KiB), list, 'kept beside the store');
    assert.equal(await lists.get(digestOf('nothing'), 64 * KiB), undefined);
    await assert.rejects(lists.get(d, 1000), RangeError);
  });
});
