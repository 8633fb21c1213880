import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { collectGarbage } from '../../lib/storage/gc.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import type { FsStorage } from '../../lib/storage/store.ts';
import { putImage, sha256, syntheticImage, tempStore } from '../archive/fixtures.ts';

const HOUR = 3600_000;

async function age(store: FsStorage, digest: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await utimes(store.paths.blob(digest), t, t);
}

async function ageAll(store: FsStorage, ms: number): Promise<void> {
  for await (const b of store.blobs.list()) await age(store, b.digest, ms);
}

async function allBlobs(store: FsStorage): Promise<string[]> {
  const out: string[] = [];
  for await (const b of store.blobs.list()) out.push(b.digest);
  return out.sort();
}

describe('ferry gc', () => {
  let ctx: Awaited<ReturnType<typeof tempStore>>;
  beforeEach(async () => {
    ctx = await tempStore();
  });
  afterEach(async () => {
    await ctx.cleanup();
  });

  it('frees exactly the bytes of unreferenced blobs older than the grace period', async () => {
    const kept = await syntheticImage('kept', 2);
    await putImage(ctx.store, 'app/kept', '1', kept);
    await putImage(ctx.store, 'cache/thing', '1', await syntheticImage('cached', 1), 'cache');
    const orphanA = Buffer.alloc(1000, 1);
    const orphanB = Buffer.alloc(2345, 2);
    await ctx.store.blobs.putBytes(orphanA);
    await ctx.store.blobs.putBytes(orphanB);
    await ctx.store.repositories.linkBlob('app/kept', sha256(orphanB));
    await ageAll(ctx.store, 2 * HOUR);
    const young = Buffer.alloc(777, 3);
    await ctx.store.blobs.putBytes(young);
    const before = await allBlobs(ctx.store);

    const report = await collectGarbage(ctx.store, { graceMs: HOUR });
    assert.equal(report.freedBytes, 1000 + 2345);
    assert.equal(report.deletedBlobs, 2);
    assert.deepEqual([report.youngBlobs, report.youngBytes], [1, 777]);
    assert.equal(report.removedLinks, 1);
    assert.deepEqual(await allBlobs(ctx.store), before.filter((d) => d !== sha256(orphanA) && d !== sha256(orphanB)));
    assert.equal(await ctx.store.repositories.hasBlob('app/kept', sha256(orphanB)), false);
    const registry = new LocalRegistry(ctx.store);
    for (const [n, t] of [['app/kept', '1'], ['cache/thing', '1']]) {
      const m = JSON.parse((await registry.getManifest(n as string, t as string)).bytes.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) assert.ok(await ctx.store.blobs.has(d), d);
    }
    assert.equal((await collectGarbage(ctx.store, { graceMs: HOUR })).freedBytes, 0);
  });

  it('deletes nothing on a dry run but reports what it would free', async () => {
    await putImage(ctx.store, 'app/x', '1', await syntheticImage('x', 1));
    await ctx.store.blobs.putBytes(Buffer.alloc(4096, 9));
    await ageAll(ctx.store, 2 * HOUR);
    const before = await allBlobs(ctx.store);
    const report = await collectGarbage(ctx.store, { graceMs: HOUR, dryRun: true });
    assert.deepEqual([report.dryRun, report.deletedBlobs, report.freedBytes], [true, 1, 4096]);
    assert.deepEqual(await allBlobs(ctx.store), before);
  });

  it('marks through an index to its child manifests and their blobs, and through tags alone', async () => {
    const img = await syntheticImage('child', 1);
    const childDigest = await putImage(ctx.store, 'multi/arch', 'amd64', img);
    const childSize = (await ctx.store.blobs.stat(childDigest))?.size as number;
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [{ mediaType: MEDIA.dockerManifest, digest: childDigest, size: childSize, platform: { os: 'linux', architecture: 'amd64' } }],
    }));
    await new LocalRegistry(ctx.store).putManifest('multi/arch', 'latest', index, MEDIA.ociIndex);
    // The child's own tag and link go: only the index keeps it alive.
    await ctx.store.repositories.deleteTag('multi/arch', 'amd64');
    await ageAll(ctx.store, 2 * HOUR);
    const before = await allBlobs(ctx.store);
    const report = await collectGarbage(ctx.store, { graceMs: HOUR });
    assert.equal(report.deletedBlobs, 0);
    assert.deepEqual(await allBlobs(ctx.store), before);
  });

  it('keeps a referrer and its subject', async () => {
    const subject = await putImage(ctx.store, 'signed/app', '1', await syntheticImage('subject', 1));
    const subjectSize = (await ctx.store.blobs.stat(subject))?.size as number;
    const sig = Buffer.from('signature bytes');
    const empty = Buffer.from('{}');
    await ctx.store.blobs.putBytes(sig);
    await ctx.store.blobs.putBytes(empty);
    // Pushed to signed/app, as a client pushes a referrer's blobs before it.
    for (const b of [sig, empty]) await ctx.store.repositories.linkBlob('signed/app', sha256(b));
    const referrer = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      artifactType: 'application/vnd.example.sig',
      config: { mediaType: MEDIA.ociEmpty, digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: 'application/octet-stream', digest: sha256(sig), size: sig.length }],
      subject: { mediaType: MEDIA.dockerManifest, digest: subject, size: subjectSize },
    }));
    const { digest } = await new LocalRegistry(ctx.store).putManifest('signed/app', sha256(referrer), referrer, MEDIA.ociManifest);
    await ageAll(ctx.store, 2 * HOUR);
    const report = await collectGarbage(ctx.store, { graceMs: HOUR });
    assert.equal(report.deletedBlobs, 0);
    for (const d of [digest, sha256(sig), sha256(empty)]) assert.ok(await ctx.store.blobs.has(d));
  });

  it('sweeps the blobs of a deleted manifest once the grace period is over', async () => {
    const img = await syntheticImage('deleted', 2);
    const digest = await putImage(ctx.store, 'gone/app', '1', img);
    await new LocalRegistry(ctx.store).deleteManifest('gone/app', digest);
    const expected = [img.config, ...img.layers].reduce((n, b) => n + b.length, 0) + ((await ctx.store.blobs.stat(digest))?.size as number);
    assert.equal((await collectGarbage(ctx.store, { graceMs: HOUR })).freedBytes, 0);
    await ageAll(ctx.store, 2 * HOUR);
    assert.equal((await collectGarbage(ctx.store, { graceMs: HOUR })).freedBytes, expected);
    assert.deepEqual(await allBlobs(ctx.store), []);
  });
});
