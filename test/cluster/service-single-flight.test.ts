/**
 * Single flight across replicas, wired into the service (issue 15.2): two mirror services in this
 * process on one RGW bucket, each with its own data dir, both asked for one cold blob at once
 * (client -> replica -> fault proxy -> reference registry, bytes counted at the proxy). The blob
 * crosses the link once: one replica holds the transfer, the other follows it from the bucket.
 * The holder stopped half way: the follower takes the transfer over from the pieces in the bucket.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { useRgw } from '../helpers/ceph.ts';
import { waitFor } from '../helpers/processes.ts';
import { startTestMirrorsOnRgw, type TestMirror } from '../e2e/mirror-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { MiB, linkConfig, readBlob, startLink, startUpstream, type Upstream } from '../e2e/transfer-fixture.ts';

const TRANSFER = { minChunkBytes: MiB, maxChunkBytes: MiB, smallBlobBytes: 256 * 1024, minConnections: 2, maxConnections: 4, stallSeconds: 2 };

describe('replicas on one bucket: one transfer per blob in the cluster (service wired)', function () {
  this.timeout(120_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let upstream: Upstream;
  let proxy: FaultProxy;
  let replicas: TestMirror[];

  before(async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-cluster-sf-')), (d) => rm(d, { recursive: true, force: true }));
    // 12 MiB: more than two of the S3 backend's 5 MiB pieces, so a follower reads runs as they land.
    upstream = teardown.add(await startUpstream({ layers: [12 * MiB, 12 * MiB], seed: 'cluster-single-flight', runnable: false }), (u) => u.stop());
    // A slow link (4 MiB/s): the transfer lasts ~3 s, long enough that both replicas ask while it runs.
    proxy = teardown.add(await startLink(upstream.registry.host, { rateBytesPerSec: 4 * MiB, latencyMs: 20 }, 3), (p) => p.close());
    const config = linkConfig(proxy.url, TRANSFER);
    replicas = await startTestMirrorsOnRgw(rgw(), { dir, teardown, prefix: 'ferry/', configs: [config, config] });
  });
  after(() => teardown.run());

  it('serves one cold blob asked of both replicas at once with one crossing of the link', async () => {
    const layer = upstream.image.layers[0]!;
    const reads = await Promise.all(replicas.map((r) => readBlob(r.url, upstream.repository, layer.digest)));
    for (const r of reads) assert.deepEqual({ status: r.status, bytes: r.bytes, digest: r.digest, error: r.error }, { status: 200, bytes: layer.size, digest: layer.digest, error: undefined });
    const fetched = proxy.stats.bytesFromUpstream;
    // Headers and manifest lookups cost a little; a second copy of the layer would cost 12 MiB more.
    assert.ok(fetched >= layer.size, `${fetched} < ${layer.size}`);
    assert.ok(fetched <= layer.size * 1.02 + 64 * 1024, `${fetched - layer.size} bytes over the layer's ${layer.size} crossed the link`);
    for (const r of replicas) assert.equal(await r.mirror.store.blobs.has(layer.digest), true);
  });

  it('lets the follower take the transfer over from the bucket when the holder stops half way', async () => {
    const layer = upstream.image.layers[1]!;
    const [holder, follower] = replicas as [TestMirror, TestMirror];
    const before = proxy.stats.bytesFromUpstream;
    const lost = readBlob(holder.url, upstream.repository, layer.digest).catch((e: unknown) => ({ error: String(e) }));
    await waitFor(() => (holder.mirror.transfers.get(layer.digest)?.transfer.snapshot().bytesDone ?? 0) >= 6 * MiB, 20_000, 'the holder half way');
    const following = readBlob(follower.url, upstream.repository, layer.digest);
    await waitFor(() => follower.mirror.transfers.get(layer.digest) !== undefined, 5000, 'the follower following');
    await holder.stop();
    const read = await following;
    assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest, error: read.error }, { status: 200, bytes: layer.size, digest: layer.digest, error: undefined });
    await lost;
    const fetched = proxy.stats.bytesFromUpstream - before;
    // What the stopped holder had in flight (at most maxConnections chunks of 1 MiB) is lost; a
    // second transfer from the start would cost 12 MiB more.
    assert.ok(fetched <= layer.size + TRANSFER.maxConnections * MiB + 64 * 1024, `${fetched - layer.size} bytes over the layer's ${layer.size} crossed the link`);
    assert.equal(await follower.mirror.store.blobs.has(layer.digest), true);
  });
});
