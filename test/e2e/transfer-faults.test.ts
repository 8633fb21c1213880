/**
 * docker pull through ferry while the link misbehaves, one fault at a time and all at once:
 * dockerd -> ferry -> FaultProxy -> reference registry. Every pull must succeed and every blob
 * must be byte-identical: in ferry's store and as skopeo reads it back from ferry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Faults } from '../fault-proxy/proxy.ts';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror, fsPaths } from './mirror-fixture.ts';
import { MiB, blobsOfImage, linkConfig, sha256File, startLink, startUpstream, type Upstream } from './transfer-fixture.ts';

const TRANSFER = { minChunkBytes: MiB, maxChunkBytes: MiB, smallBlobBytes: 256 * 1024, minConnections: 4, maxConnections: 8, stallSeconds: 1 };

/** Corrupts one byte per connection stream at 600 KiB (inside a blob body) until the first flip, then heals. */
function corruptionBurst(proxy: FaultProxy): () => void {
  const timer = setInterval(() => {
    if (proxy.stats.corruptions > 0 && proxy.faults.corruptOffsets) proxy.setFaults({ corruptOffsets: undefined });
  }, 5);
  return () => clearInterval(timer);
}

interface Scenario {
  name: string;
  faults: Faults;
  burst?: boolean;
  /** What the proxy must have done, so the scenario tested what it says. */
  happened: (p: FaultProxy) => boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'a per-connection rate cap', faults: { rateBytesPerSec: 3 * MiB }, happened: (p) => p.stats.connections > 2 },
  { name: 'connection resets', faults: { resetMeanBytes: 2 * MiB }, happened: (p) => p.stats.resets > 0 },
  { name: 'stalled connections', faults: { stallMeanBytes: 6 * MiB, stallMs: Infinity }, happened: (p) => p.stats.stalls > 0 },
  { name: 'truncated responses', faults: { truncateAfterBytes: 3 * MiB }, happened: (p) => p.stats.truncations > 0 },
  { name: 'a corrupted byte', faults: { corruptOffsets: [600 * 1024] }, burst: true, happened: (p) => p.stats.corruptions > 0 },
  {
    name: 'all of them together',
    faults: { rateBytesPerSec: 4 * MiB, latencyMs: 20, resetMeanBytes: 4 * MiB, stallMeanBytes: 8 * MiB, stallMs: Infinity, truncateAfterBytes: 3 * MiB, corruptOffsets: [600 * 1024] },
    burst: true,
    happened: (p) => p.stats.resets > 0 && p.stats.truncations > 0 && p.stats.corruptions > 0,
  },
];

describe('docker pull through ferry over a faulty link (dockerd -> ferry -> fault proxy -> registry)', function () {
  this.timeout(180_000);
  let upstream: Upstream;
  let dockerd: Dockerd;

  before(async () => {
    upstream = await startUpstream({ layers: [24 * MiB], seed: 'transfer-faults' });
    dockerd = await startDockerd({ name: 'transfer-faults' });
  });

  after(async () => {
    await dockerd?.stop();
    await upstream?.stop();
  });

  for (const s of SCENARIOS) {
    it(`pulls a byte-identical image through ${s.name}`, async () => {
      // Seed 105; "all of them" truncates at 3 MiB (it was 6 MiB: each connection draws its own faults
      // and most die at a reset or a stall first; with the tail's splits and copies no connection of
      // this seed lived to 6 MiB any more).
      const proxy = await startLink(upstream.registry.host, s.faults, 105);
      const healed = s.burst ? corruptionBurst(proxy) : () => {};
      let mirror: TestMirror | undefined;
      const dir = await mkdtemp(join(tmpdir(), 'ferry-skopeo-dir-'));
      try {
        mirror = await startTestMirror(linkConfig(proxy.url, TRANSFER));
        const ref = `${mirror.host}/${upstream.repository}:${upstream.tag}`;
        await dockerd.docker(['pull', ref], { timeoutMs: 150_000 });
        assert.equal((await dockerd.docker(['run', '--rm', '--network', 'none', ref])), upstream.image.runOutput);
        assert.ok(s.happened(proxy), `the proxy did not apply the fault: ${JSON.stringify(proxy.stats)}`);
        for (const b of blobsOfImage(upstream.image)) {
          assert.equal(await sha256File(fsPaths(mirror.mirror.store).blob(b.digest)), b.digest, `stored ${b.digest}`);
        }
        await skopeoCopy(`docker://${ref}`, `dir:${dir}`);
        for (const l of upstream.image.layers) {
          const copied = join(dir, l.digest.slice('sha256:'.length));
          assert.equal((await stat(copied)).size, l.size);
          assert.equal(await sha256File(copied), await sha256File(l.path), `skopeo's copy of ${l.digest}`);
        }
        await dockerd.docker(['rmi', ref]);
      } finally {
        healed();
        await rm(dir, { recursive: true, force: true });
        await mirror?.stop();
        await proxy.close();
      }
    });
  }
});
