/**
 * A mirror on Ceph RGW (storage kind s3) pulling through from an upstream registry: the transfer
 * is written as partial-blob pieces in the bucket and committed as the blob; skopeo verifies every
 * digest, a second replica on the bucket serves the image without asking the upstream. Issue 15.1.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRgw } from '../helpers/ceph.ts';
import { startCountingProxy } from '../helpers/counting-proxy.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { pullAndVerify } from './core-fixture.ts';
import { startTestMirror } from './mirror-fixture.ts';
import { Teardown } from './pull-through-fixture.ts';

describe('pull-through on Ceph RGW: transfers as pieces in the bucket', function () {
  this.timeout(120_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  after(() => teardown.run());

  it('pulls an image through once, stores it in the bucket, and a second replica serves it from there', async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-s3-pull-')), (d) => rm(d, { recursive: true, force: true }));
    const credentialsFile = await rgw().writeCredentialsFile(dir);
    const bucket = await rgw().createBucket();
    const image = await buildImage({ layers: [9 << 20, 40_000], seed: 's3-pull-through' });
    const registry = teardown.add(await startReferenceRegistry(), (r) => r.stop());
    await pushImage(image, registry.host, 'library/app', 'v1');
    const proxy = teardown.add(await startCountingProxy(registry.url), (p) => p.close());
    const config = {
      storage: rgw().storageConfig(bucket, { credentialsFile }),
      upstreams: { hub: { url: proxy.url } },
      defaultUpstream: 'hub',
      prefetch: { enabled: false },
    };
    const first = teardown.add(await startTestMirror(config, {}, join(dir, 'r0')), (m) => m.stop());
    const pulled = await pullAndVerify(`${first.host}/library/app:v1`);
    assert.equal(pulled.verified.length, 1 + image.layers.length);
    const objects: string[] = [];
    for await (const o of rgw().bucket(bucket).list('')) objects.push(o.key);
    for (const layer of image.layers) assert.ok(objects.includes(`blobs/sha256/${layer.digest.slice(7)}`), `${layer.digest} is an object of the bucket`);
    assert.deepEqual(objects.filter((k) => k.startsWith('partials/')), [], 'no partial left once committed');
    const second = teardown.add(await startTestMirror(config, {}, join(dir, 'r1')), (m) => m.stop());
    const before = proxy.blobGets();
    await pullAndVerify(`${second.host}/library/app:v1`);
    for (const layer of image.layers) assert.equal(proxy.blobGets().get(layer.digest) ?? 0, before.get(layer.digest) ?? 0, 'the second replica asked the upstream for no blob');
  });
});
