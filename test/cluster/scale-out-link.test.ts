/**
 * Three replicas on one RGW bucket, a cold image pulled through the link (a seeded fault proxy in
 * front of a reference registry): kill -9 of the replica holding the transfer half way, and every
 * client pull still completes with the right bytes (two dockerds across the kill, their own
 * retries through haproxy count; skopeo just after it); each surviving replica then serves the
 * whole layer. Not asserted here, measured by bench/scale.ts instead:
 * - the kill's link bytes ("kill link/unique"): 1.07-1.42x measured, the target 1.02x is not met
 *   (the S3 backend keeps up to 64 MiB of a transfer in memory before it is a piece in the
 *   bucket; what the dead holder kept there crosses the link again);
 * - the cold burst of clients spread over the 3 replicas ("cold link/unique", 1.001-1.065x): its
 *   test (6 skopeo clients, every pull complete, link <= 1.02x) passed 2 runs of 3; in the third,
 *   transfers failed in the replicas ("short read of the partial blob", "short read at N",
 *   "lacks bytes ... at commit") and two skopeo clients got a cut body.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { verifyPulledDir } from '../e2e/core-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { MiB, linkConfig, readBlob, startLink, startUpstream, type BlobRead, type Upstream } from '../e2e/transfer-fixture.ts';
import { useRgw } from '../helpers/ceph.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import type { BuiltImage } from '../helpers/oci-image.ts';
import { waitFor } from '../helpers/processes.ts';
import { startReplicasOnRgw, type Replicas } from '../helpers/replicas.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';

const CHUNK = 2 * MiB;
const TRANSFER = { minChunkBytes: CHUNK, maxChunkBytes: CHUNK, smallBlobBytes: 256 * 1024, minConnections: 4, maxConnections: 4, stallSeconds: 2 };
/** 2 MiB/s a connection, 20 ms RTT: a 24 MiB layer takes a few seconds, long enough to overlap every client. */
const LINK = { rateBytesPerSec: 2 * MiB, latencyMs: 20 };

/** skopeo copy to a temp dir (retrying a cut blob as skopeo does), then every blob's digest checked. */
async function skopeoPull(ref: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-scale-link-'));
  try {
    await skopeoCopy(`docker://${ref}`, `dir:${dir}`, { extraArgs: ['--retry-times', '5'], timeoutMs: 150_000 });
    return (await verifyPulledDir(dir)).verified;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('scale-out through the link: 3 replicas, the one holding a transfer killed', function () {
  this.timeout(240_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let upstream: Upstream;
  let proxy: FaultProxy;
  let replicas: Replicas;
  let dockerd: Dockerd;
  let secondDockerd: Dockerd;
  let killImage: BuiltImage;

  before(async function () {
    this.timeout(150_000);
    upstream = teardown.add(await startUpstream({ layers: [32 * MiB], seed: 'scale-link-kill', repository: 'test/kill', runnable: false }), (u) => u.stop());
    killImage = upstream.image;
    proxy = teardown.add(await startLink(upstream.registry.host, LINK, 7), (p) => p.close());
    replicas = teardown.add(await startReplicasOnRgw(rgw(), { count: 3, config: linkConfig(proxy.url, TRANSFER), name: 'scale-link' }), (r) => r.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-scale-link' }), (d) => d.stop());
    secondDockerd = teardown.add(await startDockerd({ name: 'dockerd-scale-link-2' }), (d) => d.stop());
  });
  after(() => teardown.run());

  it('kill -9 of the replica holding the transfer half way: every pull completes with the right bytes', async () => {
    const layer = killImage.layers[0]!;
    const before = proxy.stats.bytesFromUpstream;
    const moved = (): number => proxy.stats.bytesFromUpstream - before;
    // Replica 0 asks first, so it holds the transfer; the clients come through haproxy while it runs.
    const holderReader: Promise<BlobRead> = readBlob(replicas.replicas[0]!.url, 'test/kill', layer.digest);
    await waitFor(() => moved() >= layer.size / 10, 60_000, 'a tenth of the layer across the link');
    const ref = `${replicas.host}/test/kill:v1`;
    // dockerd retries a layer cut mid-stream (resuming it): those pulls run across the kill. skopeo
    // does not retry a cut body, so its pull starts just after the kill, while the takeover is due.
    const pulling = [dockerd, secondDockerd].map((d) => d.docker(['pull', ref], { timeoutMs: 150_000 }));
    await waitFor(() => moved() >= layer.size / 2, 60_000, 'half the layer across the link');
    await replicas.kill9(0);
    const cut = await holderReader;
    assert.ok(cut.bytes < layer.size, 'the holder died before it could serve the whole layer');
    const done = await Promise.allSettled([...pulling, skopeoPull(ref)]);
    const failed = done.flatMap((p, i) => (p.status === 'rejected' ? [`client ${i}: ${String(p.reason).slice(0, 300)}`] : []));
    assert.deepEqual(failed, []);
    for (const p of done.slice(0, 2)) assert.match(p.status === 'fulfilled' ? String(p.value) : '', new RegExp(killImage.manifestDigest));
    assert.equal(done[2]?.status === 'fulfilled' ? (done[2].value as string[]).length : 0, 1 + killImage.layers.length);
    // The takeover ran: the whole layer is in the bucket, served by each surviving replica alone.
    for (const r of replicas.replicas.slice(1)) {
      const read = await readBlob(r.url, 'test/kill', layer.digest);
      assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    }
  });
});
