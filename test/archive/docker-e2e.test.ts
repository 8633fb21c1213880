/**
 * Real clients around import and export: dockerd pulls an image from a ferry mirror and
 * `docker save`s it; ferry imports the tarball into another store under a new name; dockerd
 * pulls it from there and runs it, skopeo copies it; ferry exports it as a docker-tar and
 * `docker load` takes it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportDockerTar } from '../../lib/archive/export.ts';
import { importBundle } from '../../lib/archive/import.ts';
import { DOCKER_LAYER_UNCOMPRESSED } from '../../lib/archive/plan.ts';
import { selectImages } from '../../lib/archive/select.ts';
import { openStore } from '../../lib/storage/store.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { pushImage, skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';

describe('docker save -> ferry import -> docker pull (dockerd 20.10, skopeo)', function () {
  this.timeout(240_000);
  let dir: string;
  let source: TestMirror;
  let target: TestMirror | undefined;
  let dockerd: Dockerd;
  let image: BuiltImage;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-archive-e2e-'));
    image = await buildImage({ layers: [3 << 20, 64 << 10], seed: 'archive-e2e', runnable: true, format: 'docker' });
    source = await startTestMirror();
    await pushImage(image, source.host, 'kolla/centos-binary-nova-api', '2.0.2');
    dockerd = await startDockerd({ name: 'dockerd-archive' });
  });

  after(async () => {
    await dockerd?.stop();
    await target?.stop();
    await source?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('imports what docker save wrote, serves it for docker pull and run, and for skopeo', async () => {
    const srcRef = `${source.host}/kolla/centos-binary-nova-api:2.0.2`;
    await dockerd.docker(['pull', srcRef]);
    const tarball = join(dir, 'nova-api.tar');
    await dockerd.docker(['save', '-o', tarball, srcRef]);
    await dockerd.docker(['rmi', srcRef]);

    const targetData = join(dir, 'target');
    const store = await openStore(targetData);
    const result = await importBundle(store, tarball, { as: 'lokolla/x' });
    assert.deepEqual(result.images.map((i) => `${i.name}:${i.tag}`), ['lokolla/x:2.0.2']);
    target = await startTestMirror({}, {}, targetData);

    const manifest = JSON.parse((await skopeoInspectRaw(`docker://${target.host}/lokolla/x:2.0.2`)).toString()) as { config: { digest: string }; layers: Array<{ mediaType: string; digest: string }> };
    assert.equal(manifest.config.digest, image.configDigest, 'the image config is kept, so the image ID is the same');
    assert.deepEqual(manifest.layers.map((l) => l.digest), image.layers.map((l) => l.diffId));
    assert.ok(manifest.layers.every((l) => l.mediaType === DOCKER_LAYER_UNCOMPRESSED));

    const ref = `${target.host}/lokolla/x:2.0.2`;
    await dockerd.docker(['pull', ref]);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), image.runOutput);

    const layout = join(dir, 'skopeo-layout');
    await skopeoCopy(`docker://${ref}`, `oci:${layout}:copied`);
    await dockerd.docker(['rmi', ref]);
  });

  it('exports a docker-tar that docker load takes and runs', async () => {
    assert.ok(target, 'the import test ran first');
    const store = await openStore(target.dataDir);
    const tarball = join(dir, 'export.tar');
    await exportDockerTar(store, await selectImages(store, ['lokolla/x:2.0.2']), tarball);
    const out = await dockerd.docker(['load', '-i', tarball]);
    assert.match(out, /lokolla\/x:2\.0\.2/);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'lokolla/x:2.0.2']), image.runOutput);
    await dockerd.docker(['rmi', 'lokolla/x:2.0.2']);
  });

  it('exports pulled (gzip) layers as a docker-tar that docker load takes and runs', async () => {
    const store = await openStore(source.dataDir);
    const tarball = join(dir, 'gzip.tar');
    await exportDockerTar(store, await selectImages(store, ['kolla/centos-binary-nova-api:2.0.2']), tarball);
    assert.match(await dockerd.docker(['load', '-i', tarball]), /kolla\/centos-binary-nova-api:2\.0\.2/);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', 'kolla/centos-binary-nova-api:2.0.2']), image.runOutput);
  });
});
