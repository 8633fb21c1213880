/**
 * The README's podman recipe (/etc/containers/registries.conf), tried with the real podman: a
 * docker.io name pulled through ferry as its mirror, and the mirror itself as an insecure registry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { runChecked } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

describe('podman registries.conf recipe (the real podman)', function () {
  this.timeout(120_000);
  let dir: string;
  let hub: ReferenceRegistry;
  let mirror: TestMirror;
  let image: BuiltImage;
  let local: BuiltImage;

  const podman = (args: string[]): Promise<string> =>
    runChecked('podman', ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', ...args], {
      timeoutMs: 60_000,
      env: { ...process.env, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'), REGISTRY_AUTH_FILE: join(dir, 'auth.json') },
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-podman-'));
    hub = await startReferenceRegistry({ name: 'podman-hub' });
    image = await buildImage({ seed: 'podman-hub', layers: [300_000] });
    await pushImage(image, hub.host, 'team/app', 'v1');
    mirror = await startTestMirror({
      upstreams: { dockerhub: { url: hub.url, kind: 'dockerhub', hosts: ['docker.io'] } },
      defaultUpstream: 'dockerhub',
      rewrite: [{ match: 'kollaglue/*', local: 'lokolla/*' }],
    });
    local = await buildImage({ seed: 'podman-local', layers: [200_000] });
    await pushImage(local, mirror.host, 'lokolla/keystone', '2.0.2');
    // The recipe, with the mirror's address.
    await writeFile(join(dir, 'registries.conf'), [
      '[[registry]]',
      'prefix = "docker.io"',
      'location = "registry-1.docker.io"',
      '[[registry.mirror]]',
      `location = "${mirror.host}"`,
      'insecure = true',
      '',
      '[[registry]]',
      `location = "${mirror.host}"`,
      'insecure = true',
      '',
    ].join('\n'));
    await writeFile(join(dir, 'auth.json'), '{}');
  });

  after(async () => {
    await mirror?.stop();
    await hub?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pulls a docker.io name through ferry as its mirror', async () => {
    await podman(['pull', 'docker.io/team/app:v1']);
    assert.ok(await mirror.mirror.store.blobs.has(image.layers[0]!.digest), 'the layer came through ferry');
  });

  it('pulls kollaglue/* from the mirror as an insecure registry', async () => {
    await podman(['pull', `${mirror.host}/kollaglue/keystone:2.0.2`]);
    const out = await podman(['image', 'inspect', '--format', '{{.Digest}}', `${mirror.host}/kollaglue/keystone:2.0.2`]);
    assert.equal(out.trim(), local.manifestDigest);
  });
});
