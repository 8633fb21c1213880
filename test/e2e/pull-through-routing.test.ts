/**
 * Which upstream a request reaches: Docker's registry-mirrors mode (bare Docker Hub names to the
 * default upstream), containerd's `?ns=`, and names of hosts no upstream serves (refused, with no
 * outbound connection: ferry is never an open proxy).
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull, errorCodes, getWatchingSockets } from './pull-through-fixture.ts';

describe('pull-through: routing by default upstream, ns and host', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  let hubRegistry: ReferenceRegistry;
  let quayRegistry: ReferenceRegistry;
  let hub: CountingProxy;
  let quay: CountingProxy;
  let ferry: TestMirror;
  let official: BuiltImage;
  let orgImage: BuiltImage;
  let quayImage: BuiltImage;

  before(async () => {
    [official, orgImage, quayImage] = await Promise.all([
      buildImage({ layers: [150_000], seed: 'e2e-routing-official', runnable: { message: 'an official image via registry-mirrors' } }),
      buildImage({ layers: [120_000], seed: 'e2e-routing-org', format: 'docker', runnable: { message: 'someorg/img via registry-mirrors' } }),
      buildImage({ layers: [100_000], seed: 'e2e-routing-quay' }),
    ]);
    // Stand-ins for Docker Hub and quay.io, each behind a proxy counting what reaches it.
    hubRegistry = teardown.add(await startReferenceRegistry({ name: 'registry-hub' }), (r) => r.stop());
    quayRegistry = teardown.add(await startReferenceRegistry({ name: 'registry-quay' }), (r) => r.stop());
    await pushImage(official, hubRegistry.host, 'library/ferrybox', 'v1');
    await pushImage(orgImage, hubRegistry.host, 'someorg/img', 'v1');
    await pushImage(quayImage, quayRegistry.host, 'kolla/nova-api', 'zed');
    hub = teardown.add(await startCountingProxy(hubRegistry.url), (p) => p.close());
    quay = teardown.add(await startCountingProxy(quayRegistry.url), (p) => p.close());
    ferry = teardown.add(await startTestMirror({
      upstreams: {
        hub: { url: hub.url, kind: 'dockerhub', hosts: ['docker.io'] },
        quay: { url: quay.url, hosts: ['quay.io'] },
      },
      defaultUpstream: 'hub',
    }), (m) => m.stop());
  });
  after(() => teardown.run());

  describe("Docker's registry-mirrors mode", () => {
    let dockerd: Dockerd;

    before(async () => {
      // Without internet dockerd's fallback to the real Hub fails: a broken mirror fails the test.
      dockerd = teardown.add(await startDockerd({ name: 'dockerd-mirrors', registryMirrors: [ferry.url] }), (d) => d.stop());
    });

    it('pulls an official Hub image by its bare name through ferry from the default upstream', async () => {
      hub.reset();
      assert.equal(await dockerPull(dockerd, 'ferrybox:v1', 60_000), official.manifestDigest);
      assert.equal(hub.count('GET', '/v2/library/ferrybox/manifests/v1'), 1);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'ferrybox:v1']), 'an official image via registry-mirrors\n');
      assert.ok(await ferry.mirror.store.repositories.exists('hub/library/ferrybox'));
    });

    it('pulls an organisation image (docker.io/someorg/img) the same way', async () => {
      hub.reset();
      assert.equal(await dockerPull(dockerd, 'docker.io/someorg/img:v1', 60_000), orgImage.manifestDigest);
      assert.equal(hub.count('GET', '/v2/someorg/img/manifests/v1'), 1);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'someorg/img:v1']), 'someorg/img via registry-mirrors\n');
    });

    it('never asked the other upstream', () => {
      assert.equal(quay.requests.length, 0);
    });
  });

  describe("containerd's ?ns=", () => {
    it('routes GET /v2/kolla/x/manifests/TAG?ns=HOST to the upstream serving HOST', async () => {
      hub.reset();
      quay.reset();
      const res = await fetch(`${ferry.url}/v2/kolla/nova-api/manifests/zed?ns=quay.io`, { headers: { accept: quayImage.mediaType } });
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), quayImage.manifest);
      assert.equal(res.headers.get('docker-content-digest'), quayImage.manifestDigest);
      assert.equal(quay.count('GET', '/v2/kolla/nova-api/manifests/zed'), 1);
      assert.equal(hub.requests.length, 0);
    });

    it('routes blobs by ns too', async () => {
      const layer = quayImage.layers[0];
      assert.ok(layer?.bytes);
      const res = await fetch(`${ferry.url}/v2/kolla/nova-api/blobs/${layer.digest}?ns=quay.io`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer.bytes);
      assert.equal(quay.blobGets().get(layer.digest), 1);
      assert.equal(hub.requests.length, 0);
    });

    it('accepts the upstream URL host itself as ns', async () => {
      const res = await fetch(`${ferry.url}/v2/kolla/nova-api/manifests/zed?ns=${quay.host}`, { headers: { accept: quayImage.mediaType } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), quayImage.manifestDigest);
      await res.arrayBuffer();
    });

    it('sends the same name without ns to the default upstream, which does not have it', async () => {
      hub.reset();
      const res = await fetch(`${ferry.url}/v2/kolla/nova-api/manifests/zed`);
      assert.equal(res.status, 404);
      assert.deepEqual(errorCodes(await res.text()), ['MANIFEST_UNKNOWN']);
      assert.equal(hub.count('GET', '/v2/kolla/nova-api/manifests/zed'), 1);
    });

    it('shares the registry-mirrors cache for ns=docker.io', async () => {
      hub.reset();
      const res = await fetch(`${ferry.url}/v2/library/ferrybox/manifests/v1?ns=docker.io`, { headers: { accept: official.mediaType } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), official.manifestDigest);
      await res.arrayBuffer();
      assert.equal(hub.requests.length, 0, 'served from the cache the dockerd pull filled');
    });
  });

  describe('hosts no upstream serves', () => {
    const refused: Array<[string, string]> = [
      ['a host-prefixed name', '/v2/evil.example.com/x/manifests/latest'],
      ['a host-prefixed blob', `/v2/evil.example.com/x/blobs/sha256:${'ab'.repeat(32)}`],
      ['a host-prefixed tag list', '/v2/evil.example.com/x/tags/list'],
      ["containerd's ns", '/v2/x/manifests/latest?ns=ghcr.io'],
      ["containerd's ns, on a name with a path", '/v2/kolla/nova-api/manifests/zed?ns=evil.example.com'],
    ];
    for (const [what, path] of refused) {
      it(`refuses ${what} with NAME_UNKNOWN and opens no connection (${path})`, async () => {
        hub.reset();
        quay.reset();
        const { answer, sockets } = await getWatchingSockets(ferry.host, path);
        assert.equal(answer.status, 404);
        assert.deepEqual(errorCodes(answer.body), ['NAME_UNKNOWN']);
        assert.equal(sockets, 0, 'client sockets opened while answering');
        assert.equal(hub.requests.length + quay.requests.length, 0);
      });
    }

    it('does open a connection for a configured host, so the watch above can see one', async () => {
      // A fresh ferry: no pooled upstream connection to reuse.
      const fresh = await startTestMirror({ upstreams: { quay: { url: quay.url, hosts: ['quay.io'] } } });
      try {
        const { answer, sockets } = await getWatchingSockets(fresh.host, '/v2/quay.io/kolla/nova-api/manifests/zed');
        assert.equal(answer.status, 200);
        assert.ok(sockets > 0);
      } finally {
        await fresh.stop();
      }
    });
  });
});
