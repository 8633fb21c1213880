/**
 * Rewrite rules over local content only: images pushed to ferry as lokolla/* pull as kollaglue/*
 * through dockerd and the Docker SDK, with no upstream configured at all.
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull, errorCodes } from './pull-through-fixture.ts';

describe('pull-through: rewritten names served from local content', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  let ferry: TestMirror;
  let dockerd: Dockerd;
  let base: BuiltImage;
  let api: BuiltImage;

  before(async () => {
    [base, api] = await Promise.all([
      buildImage({ layers: [300_000], seed: 'e2e-local-base', runnable: { message: 'kolla base via ferry' } }),
      buildImage({ layers: [200_000, 50_000], seed: 'e2e-local-api', format: 'docker', runnable: { message: 'nova-api via ferry' } }),
    ]);
    ferry = teardown.add(await startTestMirror({ rewrite: [{ match: 'kollaglue/*', local: 'lokolla/*' }] }), (m) => m.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-local' }), (d) => d.stop());
    await pushImage(base, ferry.host, 'lokolla/base', 'zed');
    await pushImage(api, ferry.host, 'lokolla/nova-api', 'zed');
  });
  after(() => teardown.run());

  it('has no upstream to talk to', () => {
    assert.equal(ferry.mirror.upstreams.size, 0);
  });

  it('lets dockerd pull kollaglue/NAME pushed as lokolla/NAME, and runs it with no network', async () => {
    const ref = `${ferry.host}/kollaglue/base:zed`;
    assert.equal(await dockerPull(dockerd, ref), base.manifestDigest);
    assert.equal((await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim(), base.configDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), 'kolla base via ferry\n');
  });

  it('lets the Docker SDK pull a rewritten name as Kolla deploy does', async () => {
    const summary = await pullWithDockerSdk({ socketPath: dockerd.socketPath, repository: `${ferry.host}/kollaglue/nova-api`, tag: 'zed', timeoutSeconds: 60, overallTimeoutMs: 90_000 });
    assert.equal(summary.error, null);
    assert.equal(summary.ok, true);
    assert.equal(summary.digest, api.manifestDigest);
    assert.equal(Object.keys(summary.layers).length, api.layers.length);
    assert.ok(Object.values(summary.layers).every((s) => s === 'Pull complete'), JSON.stringify(summary.layers));
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kollaglue/nova-api:zed`]), 'nova-api via ferry\n');
  });

  it('serves what docker push put under lokolla/ as kollaglue/ too', async () => {
    const pushed = `${ferry.host}/lokolla/base:pushed-by-docker`;
    await dockerd.docker(['tag', `${ferry.host}/kollaglue/base:zed`, pushed]);
    await dockerd.docker(['push', pushed], { timeoutMs: 60_000 });
    const res = await fetch(`${ferry.url}/v2/kollaglue/base/manifests/pushed-by-docker`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    assert.equal(res.status, 200);
    const digest = res.headers.get('docker-content-digest') ?? '';
    await res.arrayBuffer();
    await dockerd.docker(['rmi', pushed, `${ferry.host}/kollaglue/base:zed`]);
    assert.equal(await dockerPull(dockerd, `${ferry.host}/kollaglue/base:pushed-by-docker`), digest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kollaglue/base:pushed-by-docker`]), 'kolla base via ferry\n');
  });

  it('answers MANIFEST_UNKNOWN for a rewritten name nothing was pushed under', async () => {
    const res = await dockerd.dockerRaw(['pull', `${ferry.host}/kollaglue/missing:zed`], { timeoutMs: 60_000 });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /manifest unknown/i);
    const http = await fetch(`${ferry.url}/v2/kollaglue/missing/manifests/zed`);
    assert.equal(http.status, 404);
    assert.deepEqual(errorCodes(await http.text()), ['MANIFEST_UNKNOWN']);
  });
});
