/**
 * A restart of ferry over its data dir: what skopeo and docker pushed (OCI, v2s2, an index,
 * names served through the shipped rewrite rules) still pulls byte for byte, a deletion stays
 * deleted, tag lists are unchanged, a half-done upload session resumes, and pushes go on.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { digestOf } from '../../lib/oci/digest.ts';
import { buildImage, buildIndex, type BuiltImage, type BuiltIndex } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';
import {
  fetchManifest, loadIntoDockerd, pullAndVerify, pushedDigest, removeAllImages, shippedRulesWithoutUpstreams, skopeoDelete, skopeoListTags,
  skopeoRaw, startCoreMirror, uploadRequests, type CoreMirror,
} from './core-fixture.ts';

/** 96 KiB of bytes no other test pushes. */
const PARTIAL = Buffer.concat(Array.from({ length: 3072 }, (_, i) => createHash('sha256').update(`core-restart-partial/${i}`).digest()));
const HALF = PARTIAL.length / 2;

describe('core: a restart over the same data dir', function () {
  this.timeout(90_000);
  const teardown = new Teardown();
  let ferry: CoreMirror;
  let dockerd: Dockerd;
  let ociImage: BuiltImage;
  let keystone: BuiltImage;
  let doomed: BuiltImage;
  let novaApi: BuiltImage;
  let index: BuiltIndex;
  let novaApiDigest: string;
  let uploadSession: string;
  let firstAddress: string;
  /** Manifests as served before the restart, by "name:reference". */
  const served = new Map<string, Buffer>();
  const refs = ['core/app:oci', 'lokolla/keystone:zed', 'kollaglue/keystone:zed', 'core/multi:v1', 'lokolla/nova-api:zed', 'kolla/nova-api:zed'];

  before(async () => {
    const rules = await shippedRulesWithoutUpstreams();
    let children: BuiltImage[];
    [ociImage, keystone, doomed, novaApi, children] = await Promise.all([
      buildImage({ layers: [120_000], seed: 'core-restart-oci' }),
      buildImage({ layers: [90_000], seed: 'core-restart-keystone', format: 'docker', runnable: { message: 'restart: keystone' } }),
      buildImage({ layers: [10_000], seed: 'core-restart-doomed', format: 'docker' }),
      buildImage({ layers: [70_000], seed: 'core-restart-nova-api', format: 'docker', runnable: { message: 'restart: nova-api' } }),
      Promise.all([
        buildImage({ layers: [30_000], seed: 'core-restart-multi-amd64' }),
        buildImage({ layers: [30_000], seed: 'core-restart-multi-arm64', platform: { os: 'linux', architecture: 'arm64' } }),
      ]),
    ]);
    index = buildIndex(children);
    ferry = await startCoreMirror(rules);
    // Whichever mirror runs at the end is stopped, and the data dir goes with it.
    teardown.add(null, () => ferry.stop());
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-core-restart' }), (d) => d.stop());

    await pushImage(ociImage, ferry.host, 'core/app', 'oci');
    await pushImage(doomed, ferry.host, 'core/app', 'doomed');
    await skopeoDelete(`docker://${ferry.host}/core/app@${doomed.manifestDigest}`);
    await pushImage(keystone, ferry.host, 'lokolla/keystone', 'zed');
    await pushImage(index, ferry.host, 'core/multi', 'v1');
    await loadIntoDockerd(dockerd, novaApi, `${ferry.host}/lokolla/nova-api:zed`);
    novaApiDigest = pushedDigest(await dockerd.docker(['push', `${ferry.host}/lokolla/nova-api:zed`], { timeoutMs: 60_000 }));

    const started = await fetch(`${ferry.url}/v2/core/partial/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    uploadSession = started.headers.get('location') ?? '';
    const firstHalf = await fetch(`${ferry.url}${uploadSession}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${HALF - 1}` },
      body: PARTIAL.subarray(0, HALF),
    });
    assert.equal(firstHalf.status, 202);

    for (const ref of refs) {
      const [name = '', reference = ''] = ref.split(':');
      const m = await fetchManifest(ferry.url, name, reference);
      assert.equal(m.status, 200, ref);
      served.set(ref, m.bytes);
    }

    const dataDir = ferry.dataDir;
    firstAddress = ferry.host;
    await ferry.stop({ keepData: true });
    ferry = await startCoreMirror(rules, dataDir);
    await removeAllImages(dockerd);
  });
  after(() => teardown.run());

  it('serves every manifest byte for byte as before, on a new address', async () => {
    assert.notEqual(ferry.host, firstAddress);
    for (const ref of refs) {
      const [name = '', reference = ''] = ref.split(':');
      const m = await fetchManifest(ferry.url, name, reference);
      assert.equal(m.status, 200, ref);
      assert.deepEqual(m.bytes, served.get(ref), ref);
    }
  });

  it('gives skopeo verified pulls of the OCI image, the v2s2 image, the whole index and the docker-pushed image', async () => {
    assert.deepEqual((await pullAndVerify(`${ferry.host}/core/app:oci`)).manifest, ociImage.manifest);
    assert.deepEqual((await pullAndVerify(`${ferry.host}/kollaglue/keystone:zed`)).manifest, keystone.manifest);
    const whole = await pullAndVerify(`${ferry.host}/core/multi:v1`, { all: true });
    assert.deepEqual(whole.manifest, index.manifest);
    assert.equal(whole.verified.length, index.images.length * 3);
    assert.equal(digestOf((await pullAndVerify(`${ferry.host}/kolla/nova-api:zed`)).manifest), novaApiDigest);
  });

  it('lets dockerd pull and run what skopeo and docker pushed, under the rewritten names', async () => {
    assert.equal(await dockerPull(dockerd, `${ferry.host}/kollaglue/keystone:zed`), keystone.manifestDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kollaglue/keystone:zed`]), keystone.runOutput);
    assert.equal(await dockerPull(dockerd, `${ferry.host}/kolla/nova-api:zed`), novaApiDigest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${ferry.host}/kolla/nova-api:zed`]), novaApi.runOutput);
  });

  it('lets the Docker SDK pull as Kolla deploy does', async () => {
    await removeAllImages(dockerd);
    const summary = await pullWithDockerSdk({ socketPath: dockerd.socketPath, repository: `${ferry.host}/kollaglue/nova-api`, tag: 'zed', timeoutSeconds: 60, overallTimeoutMs: 90_000 });
    assert.equal(summary.error, null);
    assert.equal(summary.ok, true);
    assert.equal(summary.digest, novaApiDigest);
  });

  it('keeps the deleted manifest unknown and the tag lists as they were', async () => {
    const res = await skopeoRaw(['inspect', '--tls-verify=false', `docker://${ferry.host}/core/app@${doomed.manifestDigest}`]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /manifest unknown/i);
    assert.deepEqual(await skopeoListTags(`docker://${ferry.host}/core/app`), ['oci']);
    assert.deepEqual(await skopeoListTags(`docker://${ferry.host}/kollaglue/nova-api`), ['zed']);
  });

  it('resumes the upload session started before the restart', async () => {
    const status = await fetch(`${ferry.url}${uploadSession}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${HALF - 1}`);
    const rest = await fetch(`${ferry.url}${uploadSession}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${HALF}-${PARTIAL.length - 1}` },
      body: PARTIAL.subarray(HALF),
    });
    assert.equal(rest.status, 202);
    const digest = digestOf(PARTIAL);
    const done = await fetch(`${ferry.url}${uploadSession}?digest=${digest}`, { method: 'PUT' });
    assert.equal(done.status, 201);
    const blob = await fetch(`${ferry.url}/v2/core/partial/blobs/${digest}`);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), PARTIAL);
  });

  it('takes a docker push of a new tag, finding every blob already there', async () => {
    await dockerPull(dockerd, `${ferry.host}/kollaglue/nova-api:zed`);
    const mark = ferry.log.mark();
    await dockerd.docker(['tag', `${ferry.host}/kollaglue/nova-api:zed`, `${ferry.host}/lokolla/nova-api:zed-2`]);
    assert.equal(pushedDigest(await dockerd.docker(['push', `${ferry.host}/lokolla/nova-api:zed-2`], { timeoutMs: 60_000 })), novaApiDigest);
    assert.deepEqual(uploadRequests(ferry.log.since(mark)), []);
    assert.deepEqual((await skopeoListTags(`docker://${ferry.host}/kollaglue/nova-api`)).sort(), ['zed', 'zed-2']);
  });
});
