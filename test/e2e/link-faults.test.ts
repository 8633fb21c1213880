/**
 * Issue 12: the link as it really fails, against real skopeo and dockerd. A fault proxy is the
 * link (mirror -> link -> upstream, or mirror -> link -> relay -> registry); a counting proxy
 * sees what crosses it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../lib/config/schema.ts';
import type { TransferHandle } from '../../lib/mirror/transfers.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd } from '../helpers/dockerd.ts';
import { buildImage, blobsOf, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';
import { startTestRelay, type TestRelay } from '../relay/fixture.ts';
import { startTestMirror, type TestMirror, fsPaths } from './mirror-fixture.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';

const MiB = 1024 * 1024;
const TOKEN = generateToken();
/** Pieces of 1 MiB: a flip costs 1 MiB. */
const TRANSFER: ConfigInput['transfer'] = { minChunkBytes: MiB, maxChunkBytes: MiB, minConnections: 2, maxConnections: 8 };

/**
 * Flipped bytes: at random (0.5 per MiB), and at 700 kB into each connection's stream, so that a
 * run always has one (a connection carries more than that of a 9 MiB image).
 */
const FLIPS = { corruptPerMiB: 0.5, corruptOffsets: [700_000] };

/** Every transfer the mirror starts, by digest. */
function recordFills(m: TestMirror): Map<string, TransferHandle> {
  const transfers = new Map<string, TransferHandle>();
  m.mirror.transfers.on('started', (f: TransferHandle) => transfers.set(f.digest, f));
  return transfers;
}

/** skopeo copy to dir: (one attempt: skopeo retries no blob) and the blobs it wrote compared with the image's. */
async function skopeoPullIdentical(ref: string, image: BuiltImage): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-skopeo-dir-'));
  try {
    await skopeoCopy(`docker://${ref}`, `dir:${dir}`, { timeoutMs: 90_000 });
    for (const l of image.layers) {
      const got = await readFile(join(dir, l.digest.slice('sha256:'.length)));
      assert.equal(got.length, l.size, `layer ${l.digest} size`);
      assert.equal(`sha256:${createHash('sha256').update(got).digest('hex')}`, l.digest, `layer ${l.digest} bytes`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the link as it fails (issue 12)', function () {
  this.timeout(180_000);
  const outer = new Teardown();
  let registry: ReferenceRegistry;
  let image: BuiltImage;
  /** An image pulled only after a restart. */
  let later: BuiltImage;

  before(async () => {
    registry = outer.add(await startReferenceRegistry({ name: 'registry-link-faults' }), (r) => r.stop());
    image = await buildImage({ layers: [6 * MiB, 3 * MiB, 300_000], seed: 'e2e-link-faults' });
    await pushImage(image, registry.host, 'kolla/link', 'v1');
    later = await buildImage({ layers: [2 * MiB], seed: 'e2e-link-faults-later' });
    await pushImage(later, registry.host, 'kolla/later', 'v1');
  });
  after(() => outer.run());

  describe('a direct upstream', () => {
    const teardown = new Teardown();
    let counting: CountingProxy;
    let link: FaultProxy;

    before(async () => {
      counting = teardown.add(await startCountingProxy(registry.url), (p) => p.close());
      link = teardown.add(new FaultProxy({ target: counting.host, seed: 21 }), (l) => l.close());
      await link.listen();
    });
    after(() => teardown.run());

    async function mirror(extra: Omit<ConfigInput, 'listen'> = {}, dataDir?: string): Promise<TestMirror> {
      return startTestMirror({
        upstreams: { hub: { url: link.url } },
        rewrite: [{ match: 'kolla/*', upstream: 'hub' }],
        transfer: TRANSFER,
        ...extra,
      }, {}, dataDir);
    }

    it('sends no HEAD upstream for a blob whose manifest gave its size (skopeo)', async () => {
      const m = await mirror();
      try {
        counting.reset();
        await skopeoPullIdentical(`${m.host}/kolla/link:v1`, image);
        assert.equal(counting.count('HEAD', /\/blobs\//), 0, 'a blob was HEADed upstream');
        for (const b of blobsOf(image)) assert.ok((counting.blobGets().get(b.digest) ?? 0) >= 1, `${b.digest} not fetched`);
        // A blob asked for without its manifest served here: the size is asked upstream.
        const other = await mirror();
        try {
          counting.reset();
          const layer = image.layers[2]!;
          const res = await fetch(`${other.url}/v2/kolla/link/blobs/${layer.digest}`);
          assert.equal(res.status, 200);
          assert.equal(Buffer.from(await res.arrayBuffer()).length, layer.size);
          assert.equal(counting.count('HEAD', `/v2/kolla/link/blobs/${layer.digest}`), 1);
        } finally {
          await other.stop();
        }
      } finally {
        await m.stop();
      }
    });

    it('repairs flipped bytes without piece digests: docker pull completes on its first attempt, byte-identical', async () => {
      const dockerd = teardown.add(await startDockerd({ name: 'dockerd-link-faults' }), (d) => d.stop());
      const m = await mirror();
      // What dockerd asks of the mirror: a layer cut after bad bytes is asked again (dockerd retries it).
      const front = await startCountingProxy(m.url);
      try {
        const transfers = recordFills(m);
        link.setFaults(FLIPS, { replace: true });
        const digest = await dockerPull(dockerd, `${front.host}/kolla/link:v1`, 150_000);
        link.clearFaults();
        assert.equal(digest, image.manifestDigest);
        assert.equal((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', `${front.host}/kolla/link:v1`])).trim(), image.configDigest);
        assert.ok(link.stats.corruptions >= 1, 'no byte was flipped: the test shows nothing');
        const repaired = [...transfers.values()].reduce((n, f) => n + f.transfer.snapshot().chunksRefetched, 0);
        assert.ok(repaired >= 1, 'no piece was repaired');
        const gets = front.blobGets();
        for (const l of image.layers) assert.equal(gets.get(l.digest), 1, `dockerd asked for layer ${l.digest} ${gets.get(l.digest)} times`);
      } finally {
        await front.close();
        await m.stop();
      }
    });

    it('sends no unverified byte without piece digests: skopeo copies byte-identical on its first attempt with flipped bytes', async () => {
      const m = await mirror();
      try {
        const transfers = recordFills(m);
        link.setFaults(FLIPS, { replace: true });
        const flipsBefore = link.stats.corruptions;
        // skopeo reads each blob as it arrives and fails on a cut body (unexpected EOF): sent only
        // verified bytes, its one attempt completes although blobs were repaired on the way.
        await skopeoPullIdentical(`${m.host}/kolla/link:v1`, image);
        assert.ok(link.stats.corruptions > flipsBefore, 'no byte was flipped: the test shows nothing');
        const repaired = [...transfers.values()].reduce((n, f) => n + f.transfer.snapshot().chunksRefetched, 0);
        assert.ok(repaired >= 1, 'no piece was repaired');
      } finally {
        link.clearFaults();
        await m.stop();
      }
    });

    it('a stall longer than stallSeconds costs little: skopeo copies at once, the link carries the image about once', async () => {
      const m = await mirror();
      try {
        // Connections stall for 60 s now and then, longer than stallSeconds (20 s by default).
        link.setFaults({ rateBytesPerSec: 2 * MiB, stallMeanBytes: 2 * MiB, stallMs: 60_000 }, { replace: true });
        const stallsBefore = link.stats.stalls;
        const carriedBefore = link.stats.bytesToClient;
        const transfers = recordFills(m);
        await skopeoPullIdentical(`${m.host}/kolla/link:v1`, image);
        // Each blob written about once: a cut connection resumes where it stopped; only the tail's
        // copies (issue 12.2: first copy wins, the other is cancelled) may cost more, within the
        // tail's loss budget (max(0.5% of the blob, 256 KiB), transfer.ts) and what the cancelled
        // copy had in flight (at most that much again). Seen once in CI: 339 KB over a 6.3 MB blob.
        for (const f of transfers.values()) {
          const fetched = f.transfer.snapshot().bytesFetched;
          assert.ok(fetched >= f.size && fetched <= f.size + 2 * Math.max(f.size / 200, 256 * 1024), `${fetched} bytes fetched for a ${f.size} byte blob`);
        }
        assert.ok(link.stats.stalls > stallsBefore, 'nothing stalled: the test shows nothing');
        const imageBytes = blobsOf(image).reduce((n, b) => n + b.size, 0);
        const carried = link.stats.bytesToClient - carriedBefore;
        // What the link carried to the mirror (headers, manifests, and what was in flight on a
        // connection whose rest of range went to another) is about the image.
        assert.ok(carried <= imageBytes * 1.15, `the link carried ${carried} bytes for a ${imageBytes} byte image`);
      } finally {
        link.clearFaults();
        await m.stop();
      }
    });

    it('keeps what the link learned across a restart: the first transfer after it starts at the connections reached', async () => {
      link.setFaults({ rateBytesPerSec: 1 * MiB }, { replace: true });
      const first = await mirror();
      const dataDir = first.dataDir;
      try {
        await skopeoPullIdentical(`${first.host}/kolla/link:v1`, image);
      } finally {
        await first.stop({ keepData: true });
      }
      const saved = (JSON.parse(await readFile(fsPaths(first.mirror.store).linkStateFile, 'utf8')) as Record<string, { connections: number }>).hub;
      assert.ok(saved && saved.connections > TRANSFER!.minConnections!, `the link did not grow or was not saved: ${JSON.stringify(saved)}`);
      const second = await mirror({}, dataDir);
      try {
        const started = new Promise<TransferHandle>((resolve) => second.mirror.transfers.once('started', resolve));
        const res = fetch(`${second.url}/v2/kolla/later/blobs/${later.layers[0]!.digest}`).then((r) => r.arrayBuffer());
        assert.equal((await started).transfer.snapshot().concurrency, saved.connections);
        await res;
      } finally {
        link.clearFaults();
        await second.stop();
      }
    });
  });

  describe('through a relay', () => {
    const teardown = new Teardown();
    let relay: TestRelay;
    let link: FaultProxy;
    let m: TestMirror;

    before(async () => {
      // Plain HTTP (a relay behind a TLS-terminating proxy): over TLS a flipped byte is a TLS error, not bad content.
      relay = teardown.add(await startTestRelay({ upstreams: { hub: { url: registry.url, hosts: ['docker.io'] } }, relay: { tokens: [TOKEN] } }), (r) => r.stop());
      link = teardown.add(new FaultProxy({ target: relay.host, seed: 5 }), (l) => l.close());
      await link.listen();
      m = teardown.add(await startTestMirror({
        upstreams: { relay: { url: link.url, kind: 'relay', token: TOKEN } },
        rewrite: [{ match: 'kolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' }],
        transfer: TRANSFER,
      }), (x) => x.stop());
    });
    after(() => teardown.run());

    it('sends only checked pieces: skopeo copies byte-identical on its first attempt, each flip costing one piece', async () => {
      const transfers = recordFills(m);
      link.setFaults(FLIPS, { replace: true });
      await skopeoPullIdentical(`${m.host}/kolla/link:v1`, image);
      link.clearFaults();
      assert.ok(link.stats.corruptions >= 1, 'no byte was flipped: the test shows nothing');
      let refetched = 0;
      let fetched = 0;
      for (const f of transfers.values()) {
        const s = f.transfer.snapshot();
        refetched += s.chunksRefetched;
        fetched += s.bytesFetched;
      }
      assert.ok(refetched >= 1, 'no piece was fetched again');
      const imageBytes = blobsOf(image).reduce((n, b) => n + b.size, 0);
      // Each bad piece fetched again alone (1 MiB pieces; the smallest blob is one piece).
      assert.ok(fetched <= imageBytes + refetched * MiB, `fetched ${fetched} bytes for ${imageBytes} with ${refetched} pieces again`);
    });
  });
});
