/**
 * Blobs belong to repositories: a blob is served under a name only if a repository of that name
 * holds it or the name's upstream confirms it (then it is linked, with no second transfer); a
 * deleted blob is unknown there; a pushed blob is never readable through another name; a push
 * never lands in a pull-through cache repository. Against a real distribution upstream.
 */
import assert from 'node:assert/strict';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd } from '../helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull, errorCodes } from './pull-through-fixture.ts';

describe('pull-through: blobs belong to repositories', function () {
  this.timeout(60_000);
  const teardown = new Teardown();
  let upstream: ReferenceRegistry;
  let hub: CountingProxy;
  let ferry: TestMirror;
  let small: BuiltImage;
  let sibling: BuiltImage;
  let secret: BuiltImage;
  let third: BuiltImage;
  let hubDown = false;

  const blobUrl = (name: string, digest: string): string => `${ferry.url}/v2/${name}/blobs/${digest}`;
  async function expectUnknown(res: Response, code = 'BLOB_UNKNOWN'): Promise<void> {
    assert.equal(res.status, 404, `${res.url}: ${res.status}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = await res.text();
    // A HEAD answer has no body to read the code from.
    if (body !== '') assert.deepEqual(errorCodes(body), [code]);
  }

  before(async () => {
    [small, secret] = await Promise.all([
      buildImage({ layers: [60_000, 40_000], seed: 'scoping-small' }),
      buildImage({ layers: [30_000], seed: 'scoping-secret' }),
    ]);
    // Shares its first layer with lib/small, as images built on one base do.
    sibling = await buildImage({ layers: [60_000, 20_000], seed: 'scoping-sibling', layerSeeds: ['scoping-small/0', 'scoping-sibling/1'] });
    third = await buildImage({ layers: [60_000, 10_000], seed: 'scoping-third', layerSeeds: ['scoping-small/0', 'scoping-third/1'] });
    assert.equal(sibling.layers[0]!.digest, small.layers[0]!.digest);
    upstream = teardown.add(await startReferenceRegistry({ name: 'scoping-hub' }), (r) => r.stop());
    await pushImage(small, upstream.host, 'lib/small', 'v1');
    await pushImage(sibling, upstream.host, 'team/sibling', 'v1');
    await pushImage(third, upstream.host, 'team/third', 'v1');
    hub = teardown.add(await startCountingProxy(upstream.url, {
      intercept: (_req, res) => {
        if (!hubDown) return false;
        res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
        return true;
      },
    }), (p) => p.close());
    ferry = teardown.add(await startTestMirror({
      // One retry: the down-upstream case below fails fast.
      upstreams: { hub: { url: hub.url, retries: 1 } },
      defaultUpstream: 'hub',
      rewrite: [{ match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*' }],
    }), (m) => m.stop());
    await pushImage(secret, ferry.host, 'private/app', 'v1');
    for (const l of small.layers) {
      const res = await fetch(blobUrl('lib/small', l.digest));
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
  });
  after(() => teardown.run());

  it('never serves a pushed blob through another name, whatever that name routes to', async () => {
    const digest = secret.layers[0]!.digest;
    assert.equal((await fetch(blobUrl('private/app', digest), { method: 'HEAD' })).status, 200);
    for (const name of ['lib/small', 'hub/lib/small', 'private/other', 'kollaglue/app']) {
      await expectUnknown(await fetch(blobUrl(name, digest)));
      await expectUnknown(await fetch(blobUrl(name, digest), { method: 'HEAD' }));
    }
    assert.equal(await ferry.mirror.store.repositories.hasBlob('hub/lib/small', digest), false, 'not linked into the cache');
  });

  it('links a blob the store holds for another repository once the upstream confirms it, without a second transfer', async () => {
    const shared = small.layers[0]!;
    hub.reset();
    const res = await fetch(blobUrl('team/sibling', shared.digest));
    assert.equal(res.status, 200);
    assert.equal(Buffer.from(await res.arrayBuffer()).length, shared.size);
    assert.equal(hub.count('HEAD', `/v2/team/sibling/blobs/${shared.digest}`), 1, 'asked the upstream');
    assert.equal(hub.count('GET', `/v2/team/sibling/blobs/${shared.digest}`), 0, 'no second transfer');
    assert.ok(await ferry.mirror.store.repositories.hasBlob('hub/team/sibling', shared.digest));
    // Held now: the next request does not ask again.
    hub.reset();
    assert.equal((await fetch(blobUrl('team/sibling', shared.digest), { method: 'HEAD' })).status, 200);
    assert.equal(hub.requests.length, 0);
  });

  it('links a held blob a cached manifest of the name lists without asking the upstream (so also while it is down), and nothing else', async function () {
    this.timeout(30_000);
    const shared = third.layers[0]!;
    const manifest = await fetch(`${ferry.url}/v2/team/third/manifests/v1`, { headers: { accept: third.mediaType } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    assert.equal(await ferry.mirror.store.repositories.hasBlob('hub/team/third', shared.digest), false);
    // The manifest started prefetches of the image's other blobs: let them finish while the upstream
    // is up. Left to fail while it is down, their chunks retry with a growing backoff and land on the
    // upstream in a later test (the docker push below once counted one).
    for (const digest of [third.configDigest, third.layers[1]!.digest]) {
      const res = await fetch(blobUrl('team/third', digest));
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    hubDown = true;
    hub.reset();
    try {
      const res = await fetch(blobUrl('team/third', shared.digest));
      assert.equal(res.status, 200);
      assert.equal(Buffer.from(await res.arrayBuffer()).length, shared.size);
      // The manifest the upstream served is its word: no round trip for a blob held already.
      assert.deepEqual(hub.requests.filter((r) => r.path.endsWith(shared.digest)), []);
      // No cached manifest of team/fourth lists it: without the upstream's word it is not served.
      const unlisted = await fetch(blobUrl('team/fourth', shared.digest));
      assert.ok(unlisted.status >= 500, `team/fourth: ${unlisted.status}`);
      await unlisted.arrayBuffer();
    } finally {
      hubDown = false;
    }
  });

  it('answers BLOB_UNKNOWN for a held blob whose name the upstream does not confirm', async () => {
    const only = small.layers[1]!;
    await expectUnknown(await fetch(blobUrl('team/sibling', only.digest)));
    await expectUnknown(await fetch(blobUrl('team/nothing', only.digest)));
  });

  it('makes a deleted blob unknown under that name', async () => {
    const pushed = await buildImage({ layers: [10_000], seed: 'scoping-deleted' });
    await pushImage(pushed, ferry.host, 'team/pushed', 'v1');
    const digest = pushed.layers[0]!.digest;
    assert.equal((await fetch(blobUrl('team/pushed', digest), { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(blobUrl('team/pushed', digest), { method: 'DELETE' })).status, 202);
    await expectUnknown(await fetch(blobUrl('team/pushed', digest)));
    await expectUnknown(await fetch(blobUrl('team/pushed', digest), { method: 'HEAD' }));
    await expectUnknown(await fetch(blobUrl('team/pushed', digest), { method: 'DELETE' }));
  });

  it('makes a cached blob unknown under its name after DELETE until the upstream confirms it again', async () => {
    const layer = small.layers[1]!;
    assert.equal((await fetch(blobUrl('lib/small', layer.digest), { method: 'DELETE' })).status, 202);
    await expectUnknown(await fetch(blobUrl('lib/small', layer.digest), { method: 'HEAD' }));
  });

  it('refuses a push into a pull-through cache repository with DENIED, and the cached tag stays the upstream\'s', async () => {
    const before = await fetch(`${ferry.url}/v2/lib/small/manifests/v1`, { headers: { accept: small.mediaType } });
    assert.equal(before.headers.get('docker-content-digest'), small.manifestDigest);
    await before.arrayBuffer();
    const put = await fetch(`${ferry.url}/v2/hub/lib/small/manifests/v1`, { method: 'PUT', headers: { 'content-type': secret.mediaType }, body: secret.manifest });
    assert.equal(put.status, 403);
    const body = await put.text();
    assert.deepEqual(errorCodes(body), ['DENIED']);
    assert.match(body, /pull-through cache of upstream hub/);
    const upload = await fetch(`${ferry.url}/v2/hub/lib/small/blobs/uploads/`, { method: 'POST' });
    assert.equal(upload.status, 403);
    await upload.arrayBuffer();
    const after = await fetch(`${ferry.url}/v2/lib/small/manifests/v1`, { headers: { accept: small.mediaType } });
    assert.equal(after.headers.get('docker-content-digest'), small.manifestDigest);
    await after.arrayBuffer();
    assert.equal(await ferry.mirror.store.repositories.getOrigin('hub/lib/small'), 'cache');
  });

  it('lands a push under a rewritten name in its rule\'s local repository', async () => {
    const img = await buildImage({ layers: [5_000], seed: 'scoping-rewritten' });
    await pushImage(img, ferry.host, 'kollaglue/thing', 'v1');
    assert.equal(await ferry.mirror.store.repositories.getTag('lokolla/thing', 'v1'), img.manifestDigest);
    assert.equal((await fetch(blobUrl('kollaglue/thing', img.layers[0]!.digest), { method: 'HEAD' })).status, 200);
  });

  it('mounts from a name what that name serves (its cache included), and nothing else', async () => {
    const cached = small.layers[0]!.digest;
    const mount = await fetch(`${ferry.url}/v2/team/derived/blobs/uploads/?mount=${cached}&from=lib/small`, { method: 'POST' });
    assert.equal(mount.status, 201);
    assert.equal((await fetch(blobUrl('team/derived', cached), { method: 'HEAD' })).status, 200);
    const refused = await fetch(`${ferry.url}/v2/team/derived/blobs/uploads/?mount=${secret.layers[0]!.digest}&from=lib/small`, { method: 'POST' });
    assert.equal(refused.status, 202, 'falls back to an upload session');
  });

  it('lets docker push an image built on a pulled one: HEADs miss, the layers mount from the pulled name, and it pulls back', async function () {
    this.timeout(120_000);
    const dockerd = teardown.add(await startDockerd({ name: 'dockerd-scoping' }), (d) => d.stop());
    const pulled = `${ferry.host}/lib/small:v1`;
    const pushed = `${ferry.host}/team/built-on-small:v1`;
    assert.equal(await dockerPull(dockerd, pulled), small.manifestDigest);
    await dockerd.docker(['tag', pulled, pushed]);
    hub.reset();
    await dockerd.docker(['push', pushed], { timeoutMs: 60_000 });
    const fetched = hub.requests.filter((r) => r.path.includes('/blobs/')).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(fetched, [], 'the push fetched nothing upstream');
    for (const l of small.layers) assert.ok(await ferry.mirror.store.repositories.hasBlob('team/built-on-small', l.digest), `layer ${l.digest} mounted`);
    await dockerd.docker(['rmi', pulled, pushed]);
    await dockerPull(dockerd, pushed);
  });

  it('answers GET and HEAD of an invalid tag with MANIFEST_UNKNOWN (404), without asking the upstream', async () => {
    hub.reset();
    await expectUnknown(await fetch(`${ferry.url}/v2/lib/small/manifests/-bad`), 'MANIFEST_UNKNOWN');
    await expectUnknown(await fetch(`${ferry.url}/v2/lib/small/manifests/-bad`, { method: 'HEAD' }), 'MANIFEST_UNKNOWN');
    assert.equal(hub.requests.length, 0);
    const put = await fetch(`${ferry.url}/v2/team/app/manifests/-bad`, { method: 'PUT', headers: { 'content-type': secret.mediaType }, body: secret.manifest });
    assert.equal(put.status, 400);
    assert.deepEqual(errorCodes(await put.text()), ['MANIFEST_INVALID']);
  });
});
