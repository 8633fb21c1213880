/**
 * Pre-warm of a synthetic Kolla profile through mirror -> fault proxy -> upstream, then the
 * upstream stopped and every image pulled by dockerd from the mirror alone.
 */
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kollaImageRefs } from '../../lib/kolla/naming.ts';
import { Prewarm } from '../../lib/prewarm/prewarm.ts';
import { parsePlatform } from '../../lib/prewarm/platforms.ts';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { kollaAncestry, SYNTHETIC_KOLLA } from './kolla-synthetic.ts';
import { runFerry } from './ferry-cli.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

const MiB = 1 << 20;

describe('ferry prewarm of a Kolla profile (mirror -> fault proxy -> reference registry)', function () {
  this.timeout(240_000);
  let upstream: ReferenceRegistry;
  let proxy: FaultProxy;
  let mirror: TestMirror;
  let dockerd: Dockerd | undefined;
  const images = new Map<string, BuiltImage>();
  let refs: string[];

  before(async () => {
    refs = kollaImageRefs({ release: '2.0.2', profile: 'synth', distro: 'centos', data: SYNTHETIC_KOLLA });
    assert.equal(refs.length, 10);
    upstream = await startReferenceRegistry({ name: 'prewarm-upstream' });
    for (const ref of refs) {
      const image = /centos-binary-(.+):/.exec(ref)![1]!;
      const chain = kollaAncestry(image);
      // Each image has one layer per ancestor: images share their parents' layers, as Kolla's do.
      const built = await buildImage({
        seed: `prewarm/${image}`,
        layers: chain.map((x) => (x === 'base' ? 6 * MiB : x === 'openstack-base' ? 3 * MiB : 1 * MiB)),
        layerSeeds: chain.map((x) => `prewarm-layer/${x}`),
        runnable: { message: `hello from ${image}` },
      });
      images.set(ref, built);
      await pushImage(built, upstream.host, `kolla/centos-binary-${image}`, '2.0.2');
    }
    proxy = new FaultProxy({ target: upstream.host, seed: 7, faults: { rateBytesPerSec: 4 * MiB, latencyMs: 20, resetMeanBytes: 3 * MiB } });
    await proxy.listen();
    mirror = await startTestMirror({
      upstreams: { hub: { url: proxy.url, kind: 'dockerhub', retries: 10 } },
      defaultUpstream: 'hub',
      rewrite: [{ match: 'kolla/*', local: 'lokolla/*', upstream: 'hub' }],
      transfer: { minChunkBytes: MiB, smallBlobBytes: MiB, minConnections: 4, maxConnections: 8 },
    });
  });

  after(async () => {
    await dockerd?.stop();
    await mirror?.stop();
    await proxy?.close();
    await upstream?.stop();
  });

  it('fetches every image of the profile once, through resets, and reports it', async () => {
    const prewarm = new Prewarm({ mirror: mirror.url, refs, platforms: [parsePlatform('linux/amd64')], concurrency: 4 });
    const started: string[] = [];
    prewarm.on('blob-start', ({ digest }) => started.push(digest));
    const report = await prewarm.run();
    assert.deepEqual(report.images.filter((i) => !i.ok), []);
    assert.equal(report.images.length, 10);
    // Shared layers are asked for once per run.
    assert.equal(started.length, new Set(started).size);
    const distinct = new Set([...images.values()].flatMap((im) => [im.configDigest, ...im.layers.map((l) => l.digest)]));
    assert.equal(started.length, distinct.size);
    for (const digest of distinct) assert.ok(await mirror.mirror.store.blobs.has(digest), `${digest} is in the store`);
    assert.ok(proxy.stats.resets > 0, 'the link reset connections during the pre-warm');
    assert.ok(report.goodput > 0);
  });

  it('exits non-zero with a report naming the failed image (CLI)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-prewarm-'));
    const list = join(dir, 'images.txt');
    await writeFile(list, `# two images\n${refs[0]}\nkolla/centos-binary-missing:2.0.2\n`);
    const { code, stdout } = await runFerry(['prewarm', '--mirror', mirror.url, '--list', list]);
    await rm(dir, { recursive: true, force: true });
    assert.equal(code, 1);
    assert.match(stdout, new RegExp(`ok +${refs[0]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(stdout, /FAILED kolla\/centos-binary-missing:2\.0\.2 .*MANIFEST_UNKNOWN/);
    assert.match(stdout, /1 of 2 images done, 1 failed/);
  });

  it('serves all ten to dockerd with the upstream stopped', async () => {
    await upstream.stop();
    dockerd = await startDockerd({ name: 'prewarm' });
    for (const ref of refs) {
      const name = `${mirror.host}/${ref}`;
      await dockerd.docker(['pull', name]);
      const image = /centos-binary-(.+):/.exec(ref)![1]!;
      const out = await dockerd.docker(['run', '--rm', '--network', 'none', name]);
      assert.equal(out.trim(), `hello from ${image}`);
    }
  });
});
