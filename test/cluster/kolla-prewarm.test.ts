/**
 * Issue 15.3: a Kolla build profile prewarmed through the link by 3 replicas at once. Three ferry
 * replicas on one RGW bucket; the upstream a reference registry behind the seeded fault proxy
 * (throttled, resetting connections) holding a synthetic Kolla release: every image of Kolla
 * mitaka's `mesos` profile (9 images, its real parent tree), one small layer per ancestor, so the
 * images share their bases' layers as Kolla's do. `ferry prewarm --kolla-profile` (the CLI, as an
 * operator runs it) against each replica at the same moment: every prewarm exits 0, the link
 * carries each unique blob once, and then each replica alone serves every image of the profile
 * with the upstream stopped (skopeo, every digest checked).
 *
 * Failed the link bound once on a starved machine (1 in 3 runs at load 22 on 2 cores, before
 * ed6507f): a holder whose event loop was stalled past its lease's deadline (ttl 5 s - margin 1 s
 * since its last renew) failed its transfer ("lease of <digest> lost"), and the replica that took
 * it over fetched again what had not reached the bucket: link 1.39x. Since ed6507f a renewal late
 * past the deadline holds the holder's writes back until it lands (lib/cluster/lease.ts); only a
 * renewal that gets no verdict within another ttl, or a steal, ends the holder's transfer.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { verifyPulledDir } from '../e2e/core-fixture.ts';
import { runFerry } from '../e2e/ferry-cli.ts';
import { MESOS_PROFILE, pushMesosProfile } from '../e2e/kolla-synthetic.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { MiB, blobsOfImage, linkConfig, startLink, uniqueBlobBytes } from '../e2e/transfer-fixture.ts';
import { useRgw } from '../helpers/ceph.ts';
import type { BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { startReplicasOnRgw, type Replicas } from '../helpers/replicas.ts';
import { runChecked } from '../helpers/processes.ts';
import { skopeoEnv } from '../helpers/skopeo.ts';

/** Layer sizes by ancestor: the root base largest, as Kolla's are; 13 MiB of unique layers in all. */
const LAYER_BYTES: Record<string, number> = { base: 6 * MiB, 'mesosphere-base': 2 * MiB, 'mesos-base': 2 * MiB };
const LEAF_BYTES = MiB / 2;
const TRANSFER = { minChunkBytes: MiB, maxChunkBytes: 2 * MiB, smallBlobBytes: 256 * 1024, minConnections: 2, maxConnections: 4, stallSeconds: 2 };
/** Response headers and the manifests each replica reads for itself: 48 KB measured on a link without resets. */
const LINK_FIXED = 64 * 1024;
/**
 * What one reset costs the link: the fault proxy's read-ahead (256 KiB and a 16 KiB slice, its
 * bytesDropped), and what had crossed but still sat in the replica's socket when the RST came
 * (the kernel discards it; the replica asks again from the last byte it has): the link's rate
 * times how far the replica's event loop lags. Measured at 1 MiB/s a connection: 30 KB at load
 * 17, up to 340 KB at load 22 (at 4 MiB/s: 0.35-0.94 MB at load 15). 1 MiB allows a replica
 * starved for 0.75 s; the replicas' own count (kept, below) is the sharp check.
 */
const LOST_PER_RESET = MiB;
/** Room for a small config fetched twice, far below one layer (512 KiB at least); measured: 0, the unique bytes exactly. */
const KEPT_SLACK = 64 * 1024;
/** 1 MiB/s a connection (the replicas' overheads, not the link, take most of the time), 20 ms RTT; a reset every 2 MiB on average (seeded per connection: 2-7 in a run). */
const LINK = { rateBytesPerSec: 1 * MiB, latencyMs: 20, resetMeanBytes: 2 * MiB };

describe('Kolla profile prewarmed by 3 replicas at once through the link', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  // Registered before useRgw's: the replicas stop before the store they write to.
  after(() => teardown.run());
  const rgw = useRgw();
  let images: Map<string, BuiltImage>;
  let refs: string[];
  let upstream: ReferenceRegistry;
  let proxy: FaultProxy;
  let replicas: Replicas;

  before(async function () {
    this.timeout(90_000);
    upstream = teardown.add(await startReferenceRegistry({ name: 'kolla-prewarm-upstream' }), (u) => u.stop());
    images = await pushMesosProfile(upstream.host, (x) => LAYER_BYTES[x] ?? LEAF_BYTES, 'kolla-prewarm');
    refs = [...images.keys()];
    assert.equal(refs.length, 9);
    proxy = teardown.add(await startLink(upstream.host, LINK, 15), (p) => p.close());
    replicas = teardown.add(await startReplicasOnRgw(rgw(), { count: 3, config: linkConfig(proxy.url, TRANSFER), name: 'kolla-prewarm' }), (r) => r.stop());
  });

  it('3 prewarms at once all exit 0 and the link carries each unique blob once, through resets', async () => {
    const uniqueBytes = uniqueBlobBytes(images.values());
    const before = { ...proxy.stats };
    const started = performance.now();
    const runs = await Promise.all(replicas.replicas.map((r) => runFerry(['prewarm', '-m', r.url, ...MESOS_PROFILE])));
    const seconds = (performance.now() - started) / 1000;
    for (const [i, run] of runs.entries()) {
      assert.equal(run.code, 0, `prewarm of r${i}:\n${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /9 of 9 images done/);
    }
    assert.deepEqual(replicas.crashed(), []);
    const link = proxy.stats.bytesFromUpstream - before.bytesFromUpstream;
    const dropped = proxy.stats.bytesDropped - before.bytesDropped;
    const resets = proxy.stats.resets - before.resets;
    const kept = (await Promise.all(replicas.replicas.map((r) => upstreamBytes(r.url)))).reduce((a, b) => a + b, 0);
    console.log(`      ${seconds.toFixed(1)} s; link ${link} B = ${(link / uniqueBytes).toFixed(3)}x the ${uniqueBytes} B unique; ${resets} resets (${dropped} B dropped by the link); blob bytes the replicas kept from the link ${kept} B = ${(kept / uniqueBytes).toFixed(3)}x`);
    assert.ok(resets > 0, 'the link reset connections during the prewarm');
    // One crossing per blob in the whole cluster: what the 3 replicas took off the link adds up to
    // the unique bytes (a blob fetched by two replicas would add its size, 512 KiB at least).
    assert.ok(kept <= uniqueBytes + KEPT_SLACK, `the replicas kept ${kept} B from the link for ${uniqueBytes} B unique`);
    assert.ok(link <= 1.02 * uniqueBytes + LINK_FIXED + resets * LOST_PER_RESET, `link ${link} B for ${uniqueBytes} B unique and ${resets} resets`);
  });

  it('each replica alone serves every image of the profile with the upstream stopped', async () => {
    await upstream.stop();
    await Promise.all(replicas.replicas.map(async (r) => {
      const dir = await mkdtemp(join(tmpdir(), 'ferry-kolla-prewarm-pull-'));
      try {
        await skopeoSync(r.host, refs, dir);
        for (const ref of refs) {
          const built = images.get(ref)!;
          const pulled = await verifyPulledDir(join(dir, ref.replace(/^.*\//, '')));
          assert.deepEqual(pulled.manifest, built.manifest, `${ref} from ${r.host}: the upstream's manifest`);
          assert.deepEqual(pulled.verified.sort(), blobsOfImage(built).map((b) => b.digest).sort(), `${ref} from ${r.host}: every blob`);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }));
  });
});

/** The blob bytes a replica took off the link (its /metrics ferry_upstream_bytes_total). */
async function upstreamBytes(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^ferry_upstream_bytes_total\{upstream="up"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** `skopeo sync` of every ref from `host` into `dir`/<last part of the repository>:<tag>/: one skopeo for the lot. */
async function skopeoSync(host: string, refs: string[], dir: string): Promise<void> {
  const images: Record<string, string[]> = {};
  for (const ref of refs) {
    const [repository, tag] = ref.split(':') as [string, string];
    (images[repository] ??= []).push(tag);
  }
  const yaml = join(dir, 'sync.yaml');
  await writeFile(yaml, JSON.stringify({ [host]: { 'tls-verify': false, images } }));
  await runChecked('skopeo', ['--insecure-policy', 'sync', '--src', 'yaml', '--dest', 'dir', yaml, dir], { env: skopeoEnv(), timeoutMs: 60_000 });
}
