/**
 * Three replicas on one RGW bucket pull cold images through the link (a seeded fault proxy in
 * front of a reference registry):
 * - a cold burst: 6 skopeo clients, one on each replica and three through haproxy, all complete
 *   with verified blobs, and the image crosses the link once for the whole cluster (<= 1.02x);
 * - the replica holding a transfer paused (SIGSTOP) past its lease: another replica continues the
 *   transfer, and every client completes with the right bytes, those of the paused one included
 *   (its readers follow the new holder from where they were: lib/cluster/cluster-transfers.ts);
 * - kill -9 of the replica holding the transfer half way: every client pull still completes with
 *   the right bytes (two dockerds across the kill, their own retries through haproxy count; skopeo
 *   just after it), each surviving replica then serves the whole layer, and the link carries the
 *   layer again only for what the dead holder had not put in the bucket yet (the S3 backend holds
 *   at most about a piece only in memory: lib/storage/s3/partial-blobs.ts MEMORY_BYTES).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { verifyPulledDir } from '../e2e/core-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { MiB, linkConfig, readBlob, startLink, startUpstream, type BlobRead, type Upstream } from '../e2e/transfer-fixture.ts';
import { MEMORY_BYTES } from '../../lib/storage/s3/partial-blobs.ts';
import { useRgw } from '../helpers/ceph.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { waitFor } from '../helpers/processes.ts';
import { startReplicasOnRgw, type Replicas } from '../helpers/replicas.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';

const CHUNK = 2 * MiB;
const TRANSFER = { minChunkBytes: CHUNK, maxChunkBytes: CHUNK, smallBlobBytes: 256 * 1024, minConnections: 4, maxConnections: 4, stallSeconds: 2 };
/** 2 MiB/s a connection, 20 ms RTT: a 24 MiB layer takes a few seconds, long enough to overlap every client. */
const LINK = { rateBytesPerSec: 2 * MiB, latencyMs: 20 };
const BOUND = 1.02;

/** Everything a pull of the image moves: manifest, config, layers. */
function imageBytes(image: BuiltImage): number {
  return image.manifest.length + image.config.length + image.layers.reduce((n, l) => n + l.size, 0);
}

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

describe('scale-out through the link: 3 replicas, a cold burst, the one holding a transfer killed', function () {
  this.timeout(240_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let upstream: Upstream;
  let proxy: FaultProxy;
  let replicas: Replicas & { bucket: string };
  let dockerd: Dockerd;
  let secondDockerd: Dockerd;
  let killImage: BuiltImage;
  let pauseImage: BuiltImage;

  before(async function () {
    this.timeout(150_000);
    upstream = teardown.add(await startUpstream({ layers: [24 * MiB, 300_000], seed: 'scale-link-burst', repository: 'test/burst', runnable: false }), (u) => u.stop());
    killImage = await buildImage({ layers: [32 * MiB], seed: 'scale-link-kill', format: 'docker' });
    await pushImage(killImage, upstream.registry.host, 'test/kill', 'v1');
    pauseImage = await buildImage({ layers: [16 * MiB], seed: 'scale-link-pause', format: 'docker' });
    await pushImage(pauseImage, upstream.registry.host, 'test/pause', 'v1');
    proxy = teardown.add(await startLink(upstream.registry.host, LINK, 7), (p) => p.close());
    replicas = teardown.add(await startReplicasOnRgw(rgw(), { count: 3, config: linkConfig(proxy.url, TRANSFER), name: 'scale-link' }), (r) => r.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-scale-link' }), (d) => d.stop());
    secondDockerd = teardown.add(await startDockerd({ name: 'dockerd-scale-link-2' }), (d) => d.stop());
  });
  after(() => teardown.run());

  it('6 clients, one on each replica and three through haproxy, all complete; the link carries the image once', async () => {
    const image = upstream.image;
    const before = proxy.stats.bytesFromUpstream;
    const hosts = [...replicas.replicas.map((r) => r.host), replicas.host, replicas.host, replicas.host];
    const pulls = await Promise.allSettled(hosts.map((h) => skopeoPull(`${h}/test/burst:v1`)));
    const failed = pulls.flatMap((p, i) => (p.status === 'rejected' ? [`client ${i} (${hosts[i]}): ${String(p.reason).slice(0, 300)}`] : []));
    assert.deepEqual(failed, []);
    for (const p of pulls) assert.equal(p.status === 'fulfilled' ? p.value.length : 0, 1 + image.layers.length);
    const ratio = (proxy.stats.bytesFromUpstream - before) / imageBytes(image);
    assert.ok(ratio <= BOUND, `link bytes ${(ratio).toFixed(3)}x the image (bound ${BOUND}x)`);
  });

  it('the holder paused past its lease: another replica continues, every client completes, the paused one\'s too', async () => {
    const layer = pauseImage.layers[0]!;
    const [holder, ...others] = replicas.replicas;
    const before = proxy.stats.bytesFromUpstream;
    const moved = (): number => proxy.stats.bytesFromUpstream - before;
    const reads = [readBlob(holder!.url, 'test/pause', layer.digest)];
    await waitFor(() => moved() >= layer.size / 8, 60_000, 'an eighth of the layer across the link');
    reads.push(...others.map((r) => readBlob(r.url, 'test/pause', layer.digest)));
    await waitFor(() => moved() >= layer.size / 4, 60_000, 'a quarter of the layer across the link');
    process.kill(holder!.pid, 'SIGSTOP');
    try {
      // Its lease (ttl 5 s) is taken by another replica: the holder id carries the pid.
      const lease = rgw().bucket(replicas.bucket, 'cluster/');
      await waitFor(async () => !(await lease.getText(`leases/transfer-${layer.digest}`))?.includes(`-${holder!.pid}-`), 60_000, 'another replica holding the transfer');
    } finally {
      process.kill(holder!.pid, 'SIGCONT');
    }
    const got = await Promise.all(reads);
    const whole = { status: 200, bytes: layer.size, digest: layer.digest };
    assert.deepEqual(got.map((g) => ({ status: g.status, bytes: g.bytes, digest: g.digest, ...(g.error ? { error: g.error } : {}) })), [whole, whole, whole]);
  });

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
    // What crosses again is what the dead holder had only in memory (twice MEMORY_BYTES waiting, as
    // much being put) and what the link held for it: the fault proxy's queue (256 KiB a connection)
    // and as much again in socket buffers. 1.02-1.13x measured at load 14-22; the old code 1.22x.
    const again = moved() - imageBytes(killImage);
    const allowed = 4 * MEMORY_BYTES + TRANSFER.maxConnections * 2 * 256 * 1024;
    assert.ok(again <= allowed, `${again} bytes crossed the link again (${(moved() / imageBytes(killImage)).toFixed(3)}x the image), allowed ${allowed}`);
    for (const p of done.slice(0, 2)) assert.match(p.status === 'fulfilled' ? String(p.value) : '', new RegExp(killImage.manifestDigest));
    assert.equal(done[2]?.status === 'fulfilled' ? (done[2].value as string[]).length : 0, 1 + killImage.layers.length);
    // The takeover ran: the whole layer is in the bucket, served by each surviving replica alone.
    for (const r of replicas.replicas.slice(1)) {
      const read = await readBlob(r.url, 'test/kill', layer.digest);
      assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    }
  });
});
