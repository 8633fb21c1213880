/**
 * Kolla's workflow against ferry with the shipped rewrite rules (registry.config.json) and its
 * upstreams taken away: kolla-build's images pushed by docker as lokolla/<image>:<tag>, deployed
 * by pulling kollaglue/<image>:<tag> or kolla/<image>:<tag>, with docker and with the SDK.
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';
import {
  fetchManifest, loadIntoDockerd, mountsDone, pullAndVerify, pushedDigest, removeAllImages, shippedRulesWithoutUpstreams, skopeoListTags, startCoreMirror,
  uploadRequests, type CoreMirror,
} from './core-fixture.ts';

const TAG = 'zed';

describe('core: Kolla workflow with the shipped rewrite rules and no upstream', function () {
  this.timeout(90_000);
  const teardown = new Teardown();
  let ferry: CoreMirror;
  let dockerd: Dockerd;
  const images: Record<'base' | 'nova-api', BuiltImage> = {} as never;
  const pushed: Record<string, string> = {};
  const names = ['base', 'nova-api'] as const;

  before(async () => {
    // Like kolla's image tree, nova-api is built on base: both carry the same base layer.
    [images.base, images['nova-api']] = await Promise.all([
      buildImage({ layers: [150_000], layerSeeds: ['core-kolla-base'], seed: 'core-kolla-base', format: 'docker', runnable: { message: 'kolla base' } }),
      buildImage({ layers: [150_000, 60_000], layerSeeds: ['core-kolla-base', 'core-kolla-nova-api'], seed: 'core-kolla-nova-api', format: 'docker', runnable: { message: 'kolla nova-api' } }),
    ]);
    ferry = teardown.add(await startCoreMirror(await shippedRulesWithoutUpstreams()), (m) => m.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-core-kolla' }), (d) => d.stop());
    for (const name of names) await loadIntoDockerd(dockerd, images[name], `${ferry.host}/lokolla/${name}:${TAG}`);
  });
  after(() => teardown.run());

  it('runs with the shipped rules serving kollaglue/* and kolla/* from lokolla/*, and no upstream', async () => {
    assert.equal(ferry.mirror.upstreams.size, 0);
    const rules = ferry.config.rewrite.map((r) => [r.match, r.local, r.upstream]);
    assert.deepEqual(rules, [['kollaglue/*', 'lokolla/*', undefined], ['kolla/*', 'lokolla/*', undefined]]);
    const other = await fetchManifest(ferry.url, 'library/alpine', 'latest');
    assert.equal(other.status, 404);
  });

  it('takes docker push of lokolla/<image>:<tag>, mounting the shared base layer instead of uploading it twice', async () => {
    const mark = ferry.log.mark();
    for (const name of names) pushed[name] = pushedDigest(await dockerd.docker(['push', `${ferry.host}/lokolla/${name}:${TAG}`], { timeoutMs: 60_000 }));
    const requests = ferry.log.since(mark);
    const uploadedDigests = uploadRequests(requests).filter((r) => r.method === 'PUT').map((r) => new URL(r.path, ferry.url).searchParams.get('digest'));
    assert.equal(new Set(uploadedDigests).size, uploadedDigests.length, `a blob was uploaded twice: ${JSON.stringify(uploadedDigests)}`);
    assert.equal(mountsDone(requests).filter((r) => r.repository === 'lokolla/nova-api').length, 1, JSON.stringify(requests));
    for (const name of names) assert.equal((await fetchManifest(ferry.url, `lokolla/${name}`, TAG)).digest, pushed[name]);
  });

  for (const prefix of ['kollaglue', 'kolla'] as const) {
    it(`lets docker pull ${prefix}/<image>:<tag> with the digest pushed as lokolla, and runs it`, async () => {
      await removeAllImages(dockerd);
      for (const name of names) {
        const ref = `${ferry.host}/${prefix}/${name}:${TAG}`;
        assert.equal(await dockerPull(dockerd, ref), pushed[name]);
        assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), images[name].runOutput);
      }
    });
  }

  it('lets the Docker SDK pull kollaglue/<image>:<tag> as Kolla deploy does', async () => {
    await removeAllImages(dockerd);
    const summary = await pullWithDockerSdk({ socketPath: dockerd.socketPath, repository: `${ferry.host}/kollaglue/nova-api`, tag: TAG, timeoutSeconds: 60, overallTimeoutMs: 90_000 });
    assert.equal(summary.error, null);
    assert.equal(summary.ok, true);
    assert.equal(summary.digest, pushed['nova-api']);
    assert.deepEqual(Object.values(summary.layers), images['nova-api'].layers.map(() => 'Pull complete'));
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kollaglue/nova-api:${TAG}`]), images['nova-api'].runOutput);
  });

  it('serves an image docker pushed as kolla/<image>:<tag> (kolla-build\'s default namespace) back under kolla/, kollaglue/ and lokolla/', async () => {
    const keystone = await buildImage({ layers: [40_000], seed: 'core-kolla-keystone', format: 'docker', runnable: { message: 'kolla keystone' } });
    await loadIntoDockerd(dockerd, keystone, `${ferry.host}/kolla/keystone:${TAG}`);
    const digest = pushedDigest(await dockerd.docker(['push', `${ferry.host}/kolla/keystone:${TAG}`], { timeoutMs: 60_000 }));
    for (const prefix of ['kolla', 'kollaglue', 'lokolla']) assert.equal((await fetchManifest(ferry.url, `${prefix}/keystone`, TAG)).digest, digest, prefix);
    await removeAllImages(dockerd);
    assert.equal(await dockerPull(dockerd, `${ferry.host}/kolla/keystone:${TAG}`), digest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kolla/keystone:${TAG}`]), keystone.runOutput);
  });

  it('mounts blobs named by a rewritten source repository (skopeo copy kollaglue/<image> -> lokolla/<other>)', async () => {
    // The first copy teaches skopeo where the blobs live: kollaglue/base, a name that is no repository.
    await pullAndVerify(`${ferry.host}/kollaglue/base:${TAG}`);
    const mark = ferry.log.mark();
    await skopeoCopy(`docker://${ferry.host}/kollaglue/base:${TAG}`, `docker://${ferry.host}/lokolla/base-copy:${TAG}`);
    const requests = ferry.log.since(mark);
    const layers = (JSON.parse((await fetchManifest(ferry.url, 'lokolla/base', TAG)).bytes.toString('utf8')) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
    const mounted = mountsDone(requests);
    assert.deepEqual(new Set(mounted.map((r) => new URL(r.path, ferry.url).searchParams.get('mount'))), new Set(layers), JSON.stringify(requests));
    assert.ok(mounted.every((r) => new URL(r.path, ferry.url).searchParams.get('from') === 'kollaglue/base'), JSON.stringify(mounted));
    assert.equal((await fetchManifest(ferry.url, 'kollaglue/base-copy', TAG)).digest, pushed.base);
  });

  it('answers inspect and list-tags under the rewritten names', async () => {
    for (const prefix of ['kollaglue', 'kolla']) {
      assert.equal((await skopeoInspect(`docker://${ferry.host}/${prefix}/nova-api:${TAG}`)).Digest, pushed['nova-api']);
      assert.deepEqual(await skopeoListTags(`docker://${ferry.host}/${prefix}/base`), [TAG]);
    }
  });
});
