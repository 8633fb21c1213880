/**
 * ferry as a plain local registry (no upstream) for a real dockerd and the Docker Python SDK:
 * pull and run what skopeo pushed, docker push (cross-repository mounts, a layer of tens of MiB
 * sent as a chunked PATCH and a closing PUT, a second push that uploads nothing).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';
import {
  fetchManifest, loadIntoDockerd, mountsDone, pullAndVerify, pushedDigest, startCoreMirror, uploadRequests, type CoreMirror,
} from './core-fixture.ts';

const BIG_LAYER = 32 << 20;

describe('core: dockerd and the Docker SDK against ferry as a local registry', function () {
  this.timeout(90_000);
  const teardown = new Teardown();
  let ferry: CoreMirror;
  let dockerd: Dockerd;
  let small: BuiltImage;
  let big: BuiltImage;
  let sdkImage: BuiltImage;

  before(async () => {
    [small, big, sdkImage] = await Promise.all([
      buildImage({ layers: [100_000], seed: 'core-dockerd-small', format: 'docker', runnable: { message: 'core: pulled by dockerd' } }),
      buildImage({ layers: [BIG_LAYER], seed: 'core-dockerd-big', format: 'docker', runnable: { message: 'core: pushed big by dockerd' } }),
      buildImage({ layers: [80_000, 40_000], seed: 'core-dockerd-sdk', runnable: { message: 'core: pulled by the SDK' } }),
    ]);
    ferry = teardown.add(await startCoreMirror(), (m) => m.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-core' }), (d) => d.stop());
    await Promise.all([
      pushImage(small, ferry.host, 'core/hello', 'v1'),
      pushImage(sdkImage, ferry.host, 'core/sdk', 'v1'),
    ]);
  });
  after(() => teardown.run());

  it('docker pull gets an image skopeo pushed, and docker run prints its line with no network', async () => {
    const ref = `${ferry.host}/core/hello:v1`;
    assert.equal(await dockerPull(dockerd, ref), small.manifestDigest);
    assert.equal((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), small.configDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), small.runOutput);
  });

  it('docker push of an image dockerd pulled mounts its layers into the new repository; it pulls and runs again after rmi', async () => {
    const ref = `${ferry.host}/core/retagged:v2`;
    await dockerd.docker(['tag', `${ferry.host}/core/hello:v1`, ref]);
    const mark = ferry.log.mark();
    const digest = pushedDigest(await dockerd.docker(['push', ref], { timeoutMs: 60_000 }));
    const requests = ferry.log.since(mark);
    const mounted = mountsDone(requests).map((r) => new URL(r.path, ferry.url).searchParams.get('mount'));
    for (const layer of small.layers) assert.ok(mounted.includes(layer.digest), `layer ${layer.digest} not mounted: ${JSON.stringify(requests)}`);
    // Only the config blob goes up (docker never mounts it).
    const uploaded = uploadRequests(requests).filter((r) => r.method === 'PUT').map((r) => new URL(r.path, ferry.url).searchParams.get('digest'));
    assert.deepEqual(uploaded, [small.configDigest], JSON.stringify(requests));
    const served = await fetchManifest(ferry.url, 'core/retagged', 'v2');
    assert.equal(served.digest, digest);

    await dockerd.docker(['rmi', ref, `${ferry.host}/core/hello:v1`]);
    assert.equal((await dockerd.dockerRaw(['image', 'inspect', ref])).code, 1);
    assert.equal(await dockerPull(dockerd, ref), digest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), small.runOutput);
  });

  describe(`an image with a ${BIG_LAYER >> 20} MiB layer`, () => {
    const ref = (): string => `${ferry.host}/core/big:v1`;
    let digest: string;
    let blobs: string[] = [];

    before(async () => {
      await loadIntoDockerd(dockerd, big, ref());
    });

    it('is pushed by docker as a chunked PATCH and a closing PUT, stored intact, pulled and run after rmi', async () => {
      const mark = ferry.log.mark();
      const patchFraming: string[] = [];
      const onRequest = (req: IncomingMessage): void => {
        if (req.method === 'PATCH') patchFraming.push(req.headers['transfer-encoding'] ?? `length ${req.headers['content-length']}`);
      };
      ferry.mirror.server.on('request', onRequest);
      try {
        digest = pushedDigest(await dockerd.docker(['push', ref()], { timeoutMs: 60_000 }));
      } finally {
        ferry.mirror.server.off('request', onRequest);
      }
      const requests = ferry.log.since(mark);
      assert.ok(patchFraming.length > 0 && patchFraming.every((f) => f === 'chunked'), JSON.stringify(patchFraming));
      const patches = requests.filter((r) => r.method === 'PATCH');
      const puts = requests.filter((r) => r.method === 'PUT' && r.route === 'upload');
      // Every blob (config, hello layer, big layer) goes up as its own upload session.
      assert.equal(puts.length, 1 + big.layers.length, JSON.stringify(requests));
      // No monolithic upload: each session's data came in a PATCH before the PUT that closed it.
      for (const put of puts) {
        const session = put.path.slice(0, put.path.indexOf('?'));
        assert.ok(patches.some((p) => p.path === session && requests.indexOf(p) < requests.indexOf(put)), `no PATCH before ${put.path}`);
      }
      assert.ok([...patches, ...puts].every((r) => r.status === 202 || r.status === 201), JSON.stringify(requests));

      // dockerd recompresses the layers it loaded: check what ferry stored by pulling it with skopeo.
      const pulled = await pullAndVerify(`${ferry.host}/core/big:v1`);
      assert.equal(pulled.verified.length, 1 + big.layers.length);
      blobs = pulled.verified;
      const sizes = (JSON.parse(pulled.manifest.toString('utf8')) as { layers: Array<{ size: number }> }).layers.map((l) => l.size);
      assert.ok(sizes.some((s) => s > BIG_LAYER), `no layer of ${BIG_LAYER} bytes in ${JSON.stringify(sizes)}`);

      await dockerd.docker(['rmi', ref()]);
      assert.equal(await dockerPull(dockerd, ref()), digest);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref()]), big.runOutput);
    });

    it('is pushed a second time without uploading anything: every blob is found by HEAD', async () => {
      const mark = ferry.log.mark();
      const started = Date.now();
      assert.equal(pushedDigest(await dockerd.docker(['push', ref()], { timeoutMs: 60_000 })), digest);
      const seconds = (Date.now() - started) / 1000;
      const requests = ferry.log.since(mark);
      assert.deepEqual(uploadRequests(requests), []);
      assert.deepEqual(requests.filter((r) => r.route === 'upload-start'), []);
      const heads = requests.filter((r) => r.method === 'HEAD' && r.route === 'blob');
      assert.ok(heads.every((r) => r.status === 200), JSON.stringify(requests));
      assert.deepEqual(new Set(heads.map((r) => r.path.slice(r.path.lastIndexOf('/') + 1))), new Set(blobs));
      assert.ok(seconds < 10, `second push took ${seconds} s`);
    });
  });

  it('lets the Docker SDK pull an image as Kolla deploy does: no error in the stream, image present', async () => {
    const summary = await pullWithDockerSdk({ socketPath: dockerd.socketPath, repository: `${ferry.host}/core/sdk`, tag: 'v1', timeoutSeconds: 60, overallTimeoutMs: 90_000 });
    assert.equal(summary.error, null);
    assert.equal(summary.ok, true);
    assert.equal(summary.digest, sdkImage.manifestDigest);
    assert.deepEqual(Object.values(summary.layers), sdkImage.layers.map(() => 'Pull complete'));
    const ref = `${ferry.host}/core/sdk:v1`;
    assert.equal((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), sdkImage.configDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), sdkImage.runOutput);
  });
});
