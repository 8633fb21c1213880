/**
 * Cached tags and their TTL: a tag keeps pulling from the cache when its revalidation cannot reach
 * the upstream, and a tag moved upstream is picked up once the TTL has passed.
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { sleep } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull, errorCodes } from './pull-through-fixture.ts';

function ferryFor(registry: ReferenceRegistry, manifestTtlSeconds: number): Promise<TestMirror> {
  return startTestMirror({
    // One retry: the fallback is the point here, not how long the backoff waits.
    upstreams: { origin: { url: registry.url, retries: 1 } },
    rewrite: [{ match: 'kollaglue/*', upstream: 'origin', upstreamName: 'kolla/*' }],
    cache: { manifestTtlSeconds },
  });
}

async function manifestDigest(ferry: TestMirror, name: string, tag: string): Promise<string> {
  const res = await fetch(`${ferry.url}/v2/${name}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  await res.arrayBuffer();
  assert.equal(res.status, 200);
  return res.headers.get('docker-content-digest') ?? '';
}

describe('pull-through: cached tags, TTL and revalidation', function () {
  this.timeout(120_000);
  const outer = new Teardown();
  let dockerd: Dockerd;

  before(async () => {
    dockerd = outer.add(await startDockerd({ name: 'dockerd-ttl' }), (d) => d.stop());
  });
  after(() => outer.run());

  describe('with the upstream stopped (manifestTtlSeconds: 0, so every pull revalidates)', () => {
    const teardown = new Teardown();
    let registry: ReferenceRegistry;
    let ferry: TestMirror;
    let image: BuiltImage;

    before(async () => {
      image = await buildImage({ layers: [400_000], seed: 'e2e-ttl-offline', runnable: { message: 'served while the upstream is down' } });
      registry = await startReferenceRegistry({ name: 'registry-ttl-offline' });
      teardown.add(registry, (r) => r.stop());
      await pushImage(image, registry.host, 'kolla/horizon', 'zed');
      ferry = teardown.add(await ferryFor(registry, 0), (m) => m.stop());
    });
    after(() => teardown.run());

    it('lets dockerd pull a cached tag again, falling back to the cache', async () => {
      const ref = `${ferry.host}/kollaglue/horizon:zed`;
      assert.equal(await dockerPull(dockerd, ref), image.manifestDigest);
      await dockerd.docker(['rmi', ref]);
      await registry.stop();
      assert.equal(await dockerPull(dockerd, ref), image.manifestDigest);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), 'served while the upstream is down\n');
    });

    it('lists the tags it holds while the upstream is down', async () => {
      const res = await fetch(`${ferry.url}/v2/kollaglue/horizon/tags/list`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { name: 'kollaglue/horizon', tags: ['zed'] });
      const never = await fetch(`${ferry.url}/v2/kollaglue/nova/tags/list`);
      assert.equal(never.status, 503, 'nothing held and the upstream down: unavailable, not unknown');
      assert.deepEqual(errorCodes(await never.text()), ['UNAVAILABLE']);
    });

    it('refuses cleanly a tag it never cached', async () => {
      const res = await dockerd.dockerRaw(['pull', `${ferry.host}/kollaglue/horizon:never-pulled`], { timeoutMs: 60_000 });
      assert.notEqual(res.code, 0);
      const http = await fetch(`${ferry.url}/v2/kollaglue/horizon/manifests/never-pulled`);
      assert.equal(http.status, 503);
      assert.deepEqual(errorCodes(await http.text()), ['UNAVAILABLE']);
    });
  });

  describe('with a tag moved upstream (manifestTtlSeconds: 3)', () => {
    const teardown = new Teardown();
    let registry: ReferenceRegistry;
    let ferry: TestMirror;
    let v1: BuiltImage;
    let v2: BuiltImage;

    before(async () => {
      [v1, v2] = await Promise.all([
        buildImage({ layers: [200_000], seed: 'e2e-ttl-moved-1', runnable: { message: 'glance v1' } }),
        buildImage({ layers: [200_000], seed: 'e2e-ttl-moved-2', runnable: { message: 'glance v2' } }),
      ]);
      registry = teardown.add(await startReferenceRegistry({ name: 'registry-ttl-moved' }), (r) => r.stop());
      await pushImage(v1, registry.host, 'kolla/glance', 'zed');
      ferry = teardown.add(await ferryFor(registry, 3), (m) => m.stop());
    });
    after(() => teardown.run());

    it('serves the cached tag until the TTL has passed, then the moved one', async () => {
      const ref = `${ferry.host}/kollaglue/glance:zed`;
      assert.equal(await dockerPull(dockerd, ref), v1.manifestDigest);
      const cachedAt = (await ferry.mirror.store.repositories.readTag('origin/kolla/glance', 'zed'))?.checkedAt;
      assert.ok(cachedAt !== undefined);
      await pushImage(v2, registry.host, 'kolla/glance', 'zed');
      const stale = await manifestDigest(ferry, 'kollaglue/glance', 'zed');
      // Only meaningful if it was still fresh when asked; 3 s leaves ample room.
      assert.ok(Date.now() - cachedAt < 3000, 'the TTL had already passed');
      assert.equal(stale, v1.manifestDigest);
      await sleep(Math.max(0, cachedAt + 3100 - Date.now()));
      assert.equal(await dockerPull(dockerd, ref), v2.manifestDigest);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), 'glance v2\n');
    });
  });
});
