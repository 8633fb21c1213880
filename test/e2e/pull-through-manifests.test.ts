/**
 * Manifests through a rewrite: served byte for byte (digests identical to the upstream's), the
 * children of an index fetched only when asked for, and tag lists under the rewritten names.
 */
import assert from 'node:assert/strict';
import { buildImage, buildIndex, type BuiltImage, type BuiltIndex } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoInspectRaw } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function getManifest(base: string, name: string, ref: string, method = 'GET'): Promise<{ status: number; digest: string; type: string; length: string; bytes: Buffer }> {
  const res = await fetch(`${base}/v2/${name}/manifests/${ref}`, { method, headers: { accept: ACCEPT } });
  return {
    status: res.status,
    digest: res.headers.get('docker-content-digest') ?? '',
    type: res.headers.get('content-type') ?? '',
    length: res.headers.get('content-length') ?? '',
    bytes: Buffer.from(await res.arrayBuffer()),
  };
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.json();
}

describe('pull-through: manifests and listings under rewritten names', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  let registry: ReferenceRegistry;
  let proxy: CountingProxy;
  let ferry: TestMirror;
  let dockerd: Dockerd;
  let v2s2: BuiltImage;
  let oci: BuiltImage;
  let amd64: BuiltImage;
  let arm64: BuiltImage;
  let index: BuiltIndex;

  before(async () => {
    [v2s2, oci, amd64, arm64] = await Promise.all([
      buildImage({ layers: [50_000], seed: 'e2e-manifests-v2s2', format: 'docker' }),
      buildImage({ layers: [60_000], seed: 'e2e-manifests-oci' }),
      buildImage({ layers: [70_000], seed: 'e2e-manifests-amd64', runnable: { message: 'the amd64 child of an index' } }),
      buildImage({ layers: [80_000], seed: 'e2e-manifests-arm64', platform: { os: 'linux', architecture: 'arm64' } }),
    ]);
    index = buildIndex([amd64, arm64]);
    registry = teardown.add(await startReferenceRegistry({ name: 'registry-manifests' }), (r) => r.stop());
    await pushImage(v2s2, registry.host, 'kolla/keystone', 'zed');
    await pushImage(oci, registry.host, 'kolla/keystone', 'yoga');
    await pushImage(index, registry.host, 'kolla/multi', 'zed');
    await pushImage(oci, registry.host, 'kolla/glance', 'yoga');
    await pushImage(v2s2, registry.host, 'kolla/glance', 'zed');
    proxy = teardown.add(await startCountingProxy(registry.url), (p) => p.close());
    ferry = teardown.add(await startTestMirror({
      upstreams: { origin: { url: proxy.url } },
      rewrite: [
        { match: 'kollaglue/keystone', upstream: 'origin', upstreamName: 'kolla/keystone', tags: { latest: 'zed' } },
        { match: 'kollaglue/*', local: 'lokolla/*', upstream: 'origin', upstreamName: 'kolla/*' },
      ],
    }), (m) => m.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-manifests' }), (d) => d.stop());
  });
  after(() => teardown.run());

  for (const [format, tag] of [['a Docker v2s2', 'zed'], ['an OCI', 'yoga']] as const) {
    it(`serves ${format} manifest byte for byte, with the upstream's digest and type`, async () => {
      const image = tag === 'zed' ? v2s2 : oci;
      const upstream = await getManifest(registry.url, 'kolla/keystone', tag);
      const viaFerry = await getManifest(ferry.url, 'kollaglue/keystone', tag);
      assert.equal(viaFerry.status, 200);
      assert.deepEqual(viaFerry.bytes, upstream.bytes);
      assert.deepEqual(viaFerry.bytes, image.manifest);
      assert.equal(viaFerry.digest, upstream.digest);
      assert.equal(viaFerry.digest, image.manifestDigest);
      assert.equal(viaFerry.type.split(';')[0], image.mediaType);
      const head = await getManifest(ferry.url, 'kollaglue/keystone', tag, 'HEAD');
      assert.equal(head.digest, image.manifestDigest);
      assert.equal(head.length, String(image.manifest.length));
      assert.deepEqual(await skopeoInspectRaw(`docker://${ferry.host}/kollaglue/keystone:${tag}`), image.manifest);
    });
  }

  it('serves a mapped tag as the tag it maps to', async () => {
    const viaFerry = await getManifest(ferry.url, 'kollaglue/keystone', 'latest');
    assert.equal(viaFerry.status, 200);
    assert.equal(viaFerry.digest, v2s2.manifestDigest);
  });

  it('fetches an index alone, then each child manifest only when it is asked for', async () => {
    proxy.reset();
    const viaFerry = await getManifest(ferry.url, 'kollaglue/multi', 'zed');
    assert.deepEqual(viaFerry.bytes, index.manifest);
    assert.equal(viaFerry.digest, index.manifestDigest);
    const childGets = (d: string): number => proxy.count('GET', `/v2/kolla/multi/manifests/${d}`);
    assert.deepEqual([childGets(amd64.manifestDigest), childGets(arm64.manifestDigest)], [0, 0]);

    assert.equal(await dockerPull(dockerd, `${ferry.host}/kollaglue/multi:zed`), index.manifestDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kollaglue/multi:zed`]), 'the amd64 child of an index\n');
    assert.deepEqual([childGets(amd64.manifestDigest), childGets(arm64.manifestDigest)], [1, 0]);
    assert.equal(proxy.blobGets().get(arm64.configDigest), undefined);

    for (let i = 0; i < 2; i++) {
      const child = await getManifest(ferry.url, 'kollaglue/multi', arm64.manifestDigest);
      assert.equal(child.status, 200);
      assert.deepEqual(child.bytes, arm64.manifest);
    }
    assert.equal(childGets(arm64.manifestDigest), 1, 'a manifest by digest is fetched once, then cached');
  });

  it('lists the tags of an upstream repository never pulled, under the rewritten name', async () => {
    assert.deepEqual(await getJson(`${ferry.url}/v2/kollaglue/glance/tags/list`), { name: 'kollaglue/glance', tags: ['yoga', 'zed'] });
  });

  it('lists cached tags under the rewritten name, mapped tags included', async () => {
    assert.deepEqual(await getJson(`${ferry.url}/v2/kollaglue/keystone/tags/list`), { name: 'kollaglue/keystone', tags: ['latest', 'yoga', 'zed'] });
  });

  it('lists a tag the upstream gained after others were cached', async () => {
    await pushImage(oci, registry.host, 'kolla/keystone', 'antelope');
    assert.deepEqual(await getJson(`${ferry.url}/v2/kollaglue/keystone/tags/list`), { name: 'kollaglue/keystone', tags: ['antelope', 'latest', 'yoga', 'zed'] });
    assert.equal((await getManifest(ferry.url, 'kollaglue/keystone', 'antelope')).digest, oci.manifestDigest);
  });

  it('lists tags pushed under the local name, and the rewritten name in the catalog', async () => {
    await pushImage(oci, ferry.host, 'lokolla/horizon', 'zed');
    assert.deepEqual(await getJson(`${ferry.url}/v2/kollaglue/horizon/tags/list`), { name: 'kollaglue/horizon', tags: ['zed'] });
    const { repositories } = await getJson(`${ferry.url}/v2/_catalog`) as { repositories: string[] };
    assert.ok(repositories.includes('kollaglue/horizon'), repositories.join(' '));
    assert.ok(repositories.includes('lokolla/horizon'), repositories.join(' '));
  });
});
