/**
 * `ferry prewarm --kolla-globals` against a mirror whose upstream holds a synthetic Kolla 2025.1:
 * every image of the default build profile and of services a default deploy leaves off, each a
 * few KiB. The prewarm of a default globals.yml (docker_registry = the mirror, as Kolla's docs
 * set it) must ask the upstream for exactly the 32 images deploy.json says a default multinode
 * deploy pulls, and nothing more; with --kolla-group compute, for the compute node's 9.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKollaDeploy } from '../../lib/kolla/deploy.ts';
import { expandProfile } from '../../lib/kolla/profile.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { runFerry } from './ferry-cli.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

const TAG = '2025.1-rocky-9';
const facts = loadKollaDeploy()['2025.1']!;
const deployImages = [...facts.summary.image_names_default].sort();
const computeImages = facts.summary.images_compute.map((r) => r.replace(/^quay\.io\/openstack\.kolla\/(.*):.*$/, '$1')).sort();
// The upstream also holds what a deploy must not pull: images of the default build profile a deploy
// does not run (bases, barbican's listener) and services a default deploy leaves off.
const notPulled = ['base', 'openstack-base', 'nova-base', 'neutron-base', 'barbican-keystone-listener', 'cinder-api', 'cinder-volume', 'ovn-controller', 'nova-spicehtml5proxy'];
const upstreamImages = [...deployImages, ...notPulled].sort();

/** Repositories the upstream was asked for a manifest of (HEAD or GET). */
function manifestRepos(proxy: CountingProxy): string[] {
  const repos = proxy.requests.map((r) => /^\/v2\/(.+)\/manifests\/[^/]+$/.exec(r.path)?.[1]).filter((r): r is string => r !== undefined);
  return [...new Set(repos)].sort();
}

describe('ferry prewarm --kolla-globals: a default 2025.1 deploy through the mirror', function () {
  this.timeout(180_000);
  let upstream: ReferenceRegistry;
  let proxy: CountingProxy;
  let mirror: TestMirror;
  let dir: string;

  before(async () => {
    assert.equal(deployImages.length, 32);
    const profile = expandProfile('2025.1', 'default');
    for (const image of notPulled.slice(0, 5)) assert.ok(profile.includes(image) && !deployImages.includes(image), image);
    upstream = await startReferenceRegistry({ name: 'prewarm-kolla-deploy' });
    // One shared base layer and one own layer each, as Kolla's images share base and openstack-base.
    const built = await Promise.all(upstreamImages.map((image) => buildImage({ seed: `kolla-deploy/${image}`, layers: [4096, 512], layerSeeds: ['kolla-deploy/base', `kolla-deploy/${image}`] })));
    for (let i = 0; i < built.length; i += 8) {
      await Promise.all(built.slice(i, i + 8).map((b, j) => pushImage(b, upstream.host, `openstack.kolla/${upstreamImages[i + j]!}`, TAG)));
    }
    proxy = await startCountingProxy(upstream.url);
    // The shipped config's rule for Zed+ names: openstack.kolla/* from quay (here: the synthetic upstream).
    mirror = await startTestMirror({ upstreams: { quay: { url: proxy.url, kind: 'dockerhub' } }, rewrite: [{ match: 'openstack.kolla/*', upstream: 'quay' }] });
    dir = await mkdtemp(join(tmpdir(), 'ferry-kolla-deploy-'));
  });

  after(async () => {
    await mirror?.stop();
    await proxy?.close();
    await upstream?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function prewarm(registry: string, extra: string[]): Promise<{ stdout: string; stderr: string }> {
    const globals = join(dir, 'globals.yml');
    // kolla-ansible's shipped globals.yml, uncommented as its docs do for a local registry.
    await writeFile(globals, `---\nkolla_base_distro: "rocky"\nopenstack_release: "2025.1"\ndocker_registry: "${registry}"\ndocker_registry_insecure: yes\nnetwork_interface: "eth0"\n`);
    const r = await runFerry(['prewarm', '-m', mirror.url, '--kolla-globals', globals, ...extra]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r;
  }

  it('fetches the compute node\'s 9 images and nothing more with --kolla-group compute (docker_registry naming the mirror otherwise)', async () => {
    const { stdout, stderr } = await prewarm('mirror.example.lan:4000', ['--kolla-group', 'compute']);
    assert.match(stderr, new RegExp(`docker_registry mirror\\.example\\.lan:4000 taken to be this mirror \\(${mirror.host.replace(/\./g, '\\.')}\\)`));
    assert.match(stdout, /kolla-ansible 2025\.1 deploy \(.*group compute\): 9 images/);
    assert.deepEqual(manifestRepos(proxy), computeImages.map((i) => `openstack.kolla/${i}`));
  });

  it('fetches exactly the 32 images of a default deploy and nothing more, printing the count', async () => {
    const { stdout } = await prewarm(mirror.host, []);
    assert.match(stdout, /kolla-ansible 2025\.1 deploy \(.*all groups\): 32 images/);
    // Over both runs the upstream was asked for the deploy's images, and for nothing else.
    assert.deepEqual(manifestRepos(proxy), deployImages.map((i) => `openstack.kolla/${i}`));
    for (const image of deployImages) {
      const r = await fetch(`${mirror.url}/v2/openstack.kolla/${image}/manifests/${TAG}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(r.status, 200, image);
    }
    // Blobs: the shared base layer once, and each image's own layer and config.
    const gets = proxy.blobGets();
    assert.ok([...gets.values()].every((n) => n === 1), JSON.stringify([...gets]));
  });
});
