/**
 * A HEAD of a blob never starts an upstream fetch: docker push HEADs every layer it is about to
 * upload, and with a default upstream those checks must not cross the slow link.
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

describe('HEAD of a blob with a default upstream', function () {
  this.timeout(60_000);
  let upstream: ReferenceRegistry;
  let proxy: CountingProxy;
  let mirror: TestMirror;
  let image: BuiltImage;

  before(async () => {
    upstream = await startReferenceRegistry({ name: 'head-upstream' });
    image = await buildImage({ seed: 'blob-head', layers: [200_000] });
    await pushImage(image, upstream.host, 'team/app', 'v1');
    proxy = await startCountingProxy(upstream.url);
    mirror = await startTestMirror({ upstreams: { hub: { url: proxy.url, kind: 'dockerhub' } }, defaultUpstream: 'hub' });
  });

  after(async () => {
    await mirror?.stop();
    await proxy?.close();
    await upstream?.stop();
  });

  it('answers BLOB_UNKNOWN for a blob it does not hold, without asking upstream', async () => {
    const digest = image.layers[0]!.digest;
    const res = await fetch(`${mirror.url}/v2/team/app/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(res.status, 404);
    assert.equal(proxy.requests.length, 0, proxy.requests.map((r) => `${r.method} ${r.path}`).join(', '));
  });

  it('answers a HEAD once a GET has brought the blob in', async () => {
    const digest = image.layers[0]!.digest;
    const get = await fetch(`${mirror.url}/v2/team/app/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.equal(Buffer.from(await get.arrayBuffer()).length, image.layers[0]!.size);
    const head = await fetch(`${mirror.url}/v2/team/app/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(image.layers[0]!.size));
    assert.equal(head.headers.get('docker-content-digest'), digest);
  });

  it('takes a push to a default-routed name while the upstream is down, without waiting on it', async () => {
    await upstream.stop();
    const other = await buildImage({ seed: 'blob-head-push', layers: [300_000] });
    const started = Date.now();
    await pushImage(other, mirror.host, 'team/pushed', 'v1');
    assert.ok(Date.now() - started < 15_000, `push took ${Date.now() - started} ms`);
    const res = await fetch(`${mirror.url}/v2/team/pushed/manifests/v1`, { headers: { accept: other.mediaType } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), other.manifestDigest);
    assert.equal(proxy.requests.filter((r) => r.path.includes('team/pushed')).length, 0, 'nothing about the push went upstream');
  });
});
