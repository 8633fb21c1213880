/**
 * The README's containerd recipe, tried with the real containerd (the one dockerd runs) through
 * `ctr images pull --hosts-dir`: docker.io names through ferry as a mirror (containerd adds
 * ?ns=docker.io), and quay.io names through ferry with override_path (routed by host prefix).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { runChecked } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

describe('containerd hosts.toml recipe (ctr with the containerd dockerd runs)', function () {
  this.timeout(120_000);
  let dir: string;
  let hub: ReferenceRegistry;
  let quay: ReferenceRegistry;
  let mirror: TestMirror;
  let dockerd: Dockerd;
  let hubImage: BuiltImage;
  let quayImage: BuiltImage;

  const ctr = (args: string[]): Promise<string> =>
    runChecked('ctr', ['--address', join(dockerd.execRoot, 'containerd', 'containerd.sock'), '--namespace', 'ferry-test', ...args], { timeoutMs: 60_000 });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-containerd-'));
    hub = await startReferenceRegistry({ name: 'containerd-hub' });
    quay = await startReferenceRegistry({ name: 'containerd-quay' });
    hubImage = await buildImage({ seed: 'containerd-hub', layers: [300_000] });
    quayImage = await buildImage({ seed: 'containerd-quay', layers: [200_000] });
    await pushImage(hubImage, hub.host, 'team/app', 'v1');
    await pushImage(quayImage, quay.host, 'openstack.kolla/nova-api', '2025.1-rocky-9');
    mirror = await startTestMirror({
      upstreams: {
        dockerhub: { url: hub.url, kind: 'dockerhub', hosts: ['docker.io'] },
        quay: { url: quay.url, hosts: ['quay.io'] },
      },
      defaultUpstream: 'dockerhub',
    });
    dockerd = await startDockerd({ name: 'dockerd-containerd' });
    // The recipe, with the mirror's address: one directory per mirrored registry host.
    await mkdir(join(dir, 'docker.io'), { recursive: true });
    await writeFile(join(dir, 'docker.io', 'hosts.toml'), [
      'server = "https://registry-1.docker.io"',
      '',
      `[host."http://${mirror.host}"]`,
      '  capabilities = ["pull", "resolve"]',
      '  skip_verify = true',
      '',
    ].join('\n'));
    await mkdir(join(dir, 'quay.io'), { recursive: true });
    await writeFile(join(dir, 'quay.io', 'hosts.toml'), [
      'server = "https://quay.io"',
      '',
      `[host."http://${mirror.host}/v2/quay.io"]`,
      '  capabilities = ["pull", "resolve"]',
      '  override_path = true',
      '',
    ].join('\n'));
  });

  after(async () => {
    await dockerd?.stop();
    await mirror?.stop();
    await quay?.stop();
    await hub?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pulls a docker.io name through ferry (registry-mirror with ?ns=docker.io)', async () => {
    await ctr(['images', 'pull', '--hosts-dir', dir, 'docker.io/team/app:v1']);
    const list = await ctr(['images', 'ls', '-q']);
    assert.match(list, /docker\.io\/team\/app:v1/);
    assert.ok(await mirror.mirror.store.blobs.has(hubImage.layers[0]!.digest), 'the layer came through ferry');
  });

  it('pulls a quay.io name through ferry with override_path (routed by host prefix)', async () => {
    await ctr(['images', 'pull', '--hosts-dir', dir, 'quay.io/openstack.kolla/nova-api:2025.1-rocky-9']);
    assert.ok(await mirror.mirror.store.blobs.has(quayImage.layers[0]!.digest), 'the layer came through ferry');
  });
});
