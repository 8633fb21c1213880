/**
 * Two dockerds (or many HTTP clients) pulling the same image at once through ferry: every blob crosses the upstream link
 * once. A counting proxy between ferry and the reference registry sees every upstream request.
 */
import assert from 'node:assert/strict';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { blobsOf, buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';

const MiB = 1024 * 1024;

describe('pull-through: concurrent pulls of one image share one upstream flight', function () {
  this.timeout(150_000);
  const outer = new Teardown();
  let registry: ReferenceRegistry;
  let daemons: [Dockerd, Dockerd];

  before(async () => {
    registry = outer.add(await startReferenceRegistry({ name: 'registry-single-flight' }), (r) => r.stop());
    const started = await Promise.all([startDockerd({ name: 'dockerd-sf-a' }), startDockerd({ name: 'dockerd-sf-b' })]);
    for (const d of started) outer.add(d, (x) => x.stop());
    daemons = started as [Dockerd, Dockerd];
  });
  after(() => outer.run());

  /** A ferry routing kollaglue/* to upstream kolla/* through a fresh counting proxy. */
  async function ferryWithProxy(teardown: Teardown, extra: Omit<ConfigInput, 'listen'> = {}): Promise<{ ferry: TestMirror; proxy: CountingProxy }> {
    const proxy = teardown.add(await startCountingProxy(registry.url), (p) => p.close());
    const ferry = teardown.add(await startTestMirror({
      upstreams: { origin: { url: proxy.url } },
      rewrite: [{ match: 'kollaglue/*', upstream: 'origin', upstreamName: 'kolla/*' }],
      ...extra,
    }), (m) => m.stop());
    return { ferry, proxy };
  }

  async function pullOnBoth(ferry: TestMirror, name: string, image: BuiltImage): Promise<void> {
    const ref = `${ferry.host}/kollaglue/${name}:zed`;
    const digests = await Promise.all(daemons.map((d) => dockerPull(d, ref)));
    assert.deepEqual(digests, [image.manifestDigest, image.manifestDigest]);
    for (const d of daemons) assert.equal((await d.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), image.configDigest);
  }

  describe('with blobs at or under smallBlobBytes (one request each)', () => {
    const teardown = new Teardown();
    let image: BuiltImage;
    let ferry: TestMirror;
    let proxy: CountingProxy;

    before(async () => {
      image = await buildImage({ layers: [3 * MiB, 2 * MiB, MiB], seed: 'e2e-single-flight-small' });
      assert.ok(image.layers.every((l) => l.size <= 4 * MiB));
      await pushImage(image, registry.host, 'kolla/nova-compute', 'zed');
      ({ ferry, proxy } = await ferryWithProxy(teardown));
    });
    after(() => teardown.run());

    it('fetches each of the config and three layers with exactly one upstream GET', async () => {
      await pullOnBoth(ferry, 'nova-compute', image);
      const gets = proxy.blobGets();
      const blobs = blobsOf(image);
      assert.equal(blobs.length, 4);
      assert.deepEqual(
        Object.fromEntries(blobs.map((b) => [b.digest, gets.get(b.digest) ?? 0])),
        Object.fromEntries(blobs.map((b) => [b.digest, 1])),
      );
      assert.equal(gets.size, blobs.length, 'no GET of any other blob');
      for (const b of blobs) {
        const bytes = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${b.digest}`)).reduce((n, r) => n + r.bytes, 0);
        assert.equal(bytes, b.size, `bytes fetched of ${b.digest}`);
      }
    });
  });

  describe('with many plain HTTP clients asking for the same blobs at once', () => {
    const teardown = new Teardown();
    let image: BuiltImage;

    before(async () => {
      image = await buildImage({ layers: [200_000, 100_000, 50_000, 1000, 2000, 3000], seed: 'e2e-single-flight-http' });
      await pushImage(image, registry.host, 'kolla/cron', 'zed');
    });
    after(() => teardown.run());

    it('answers every client in full and fetches each blob once, however the requests interleave', async () => {
      // Fresh mirrors: each round races cold transfers against requests arriving while they finish.
      for (let round = 0; round < 4; round++) {
        const rounds = new Teardown();
        try {
          const { ferry, proxy } = await ferryWithProxy(rounds);
          const answers = await Promise.all(image.layers.flatMap((layer) => Array.from({ length: 8 }, async (_, i) => {
            await new Promise((r) => setTimeout(r, i * 2));
            const res = await fetch(`${ferry.url}/v2/kollaglue/cron/blobs/${layer.digest}`);
            const body = Buffer.from(await res.arrayBuffer());
            return { digest: layer.digest, status: res.status, ok: res.status === 200 && body.equals(layer.bytes ?? Buffer.alloc(0)) };
          })));
          assert.deepEqual(answers.filter((a) => !a.ok), [], `round ${round}`);
          assert.deepEqual([...proxy.blobGets().values()], image.layers.map(() => 1), `round ${round}`);
        } finally {
          await rounds.run();
        }
      }
    });
  });

  describe('with a 24 MiB layer fetched in 1 MiB ranges', () => {
    const teardown = new Teardown();
    let image: BuiltImage;
    let ferry: TestMirror;
    let proxy: CountingProxy;

    before(async () => {
      image = await buildImage({ layers: [24 * MiB, 100_000], seed: 'e2e-single-flight-large' });
      await pushImage(image, registry.host, 'kolla/nova-libvirt', 'zed');
      ({ ferry, proxy } = await ferryWithProxy(teardown, { transfer: { minChunkBytes: MiB, smallBlobBytes: MiB } }));
    });
    after(() => teardown.run());

    it('fetches the large layer once in all, in ranges, and each small blob with one GET', async () => {
      await pullOnBoth(ferry, 'nova-libvirt', image);
      const [large, small] = image.layers;
      assert.ok(large && small);
      const rangeGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${large.digest}`));
      assert.ok(rangeGets.length >= 24, `${rangeGets.length} GETs of the large layer`);
      assert.ok(rangeGets.every((r) => r.status === 206), `statuses ${[...new Set(rangeGets.map((r) => r.status))].join(',')}`);
      assert.equal(rangeGets.reduce((n, r) => n + r.bytes, 0), large.size);
      const gets = proxy.blobGets();
      assert.equal(gets.get(small.digest), 1);
      assert.equal(gets.get(image.configDigest), 1);
    });
  });
});
