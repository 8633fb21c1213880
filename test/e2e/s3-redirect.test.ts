/**
 * storage.redirect (issue 15.1, "consider presigned URLs, off by default"): two mirrors on one
 * Ceph RGW bucket, one with redirect set. skopeo pulls through each; the redirecting one answers
 * blob GETs 307 to presigned RGW URLs (skopeo follows them and verifies every digest), only after
 * the repository check; the other streams as before.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRgw } from '../helpers/ceph.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { pullAndVerify } from './core-fixture.ts';
import { startTestMirrorsOnRgw, type TestMirror } from './mirror-fixture.ts';
import { Teardown } from './pull-through-fixture.ts';

/** The status line and headers of a request written as is (no Host unless the template has one). */
function rawGet(host: string, path: string, template: string): Promise<string> {
  const [hostname, port] = host.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    let got = '';
    const socket = connect(Number(port), hostname, () => socket.write(template.replace('%s', path)));
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        socket.destroy();
        resolve(got.slice(0, got.indexOf('\r\n\r\n')));
      }
    }).on('error', reject);
  });
}

describe('storage.redirect on Ceph RGW: blob GETs answered by presigned URLs, off by default', function () {
  this.timeout(60_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let plain: TestMirror;
  let redirecting: TestMirror;
  let image: BuiltImage;
  let secret: BuiltImage;
  /** Status of each blob GET (not HEAD) a mirror answered. */
  const blobGets = new Map<TestMirror, number[]>();

  before(async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-s3-redirect-')), (d) => rm(d, { recursive: true, force: true }));
    [image, secret, [plain, redirecting]] = await Promise.all([
      buildImage({ layers: [300_000, 2_000], seed: 's3-redirect', format: 'oci' }),
      buildImage({ layers: [1_000], seed: 's3-redirect-secret', format: 'oci' }),
      startTestMirrorsOnRgw(rgw(), { dir, teardown, prefix: 'ferry/', configs: [{}, { storage: { redirect: { expirySeconds: 60 } } }] }),
    ]);
    for (const m of [plain, redirecting]) {
      blobGets.set(m, []);
      m.mirror.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) res.on('finish', () => blobGets.get(m)!.push(res.statusCode));
      });
    }
    await pushImage(image, plain.host, 'team/app', 'v1');
    await pushImage(secret, plain.host, 'other/secret', 'v1');
    blobGets.get(plain)!.length = 0;
  });
  after(() => teardown.run());

  it('answers blob GETs 307 to a presigned RGW URL, which skopeo follows; digests verified', async () => {
    const pulled = await pullAndVerify(`${redirecting.host}/team/app:v1`);
    assert.equal(pulled.verified.length, 1 + image.layers.length);
    const statuses = blobGets.get(redirecting)!;
    assert.ok(statuses.length >= 1 + image.layers.length && statuses.every((s) => s === 307), `blob GETs: ${statuses.join(' ')}`);
    const res = await fetch(`${redirecting.url}/v2/team/app/blobs/${image.layers[0]!.digest}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('docker-content-digest'), image.layers[0]!.digest);
    const location = new URL(res.headers.get('location') ?? '');
    assert.equal(location.origin, new URL(rgw().endpoint).origin, 'clients are sent to the store');
    assert.equal(location.searchParams.get('X-Amz-Expires'), '60');
    assert.ok(location.searchParams.get('X-Amz-Signature'));
  });

  it('passes a Range through the redirect; the URL opens only its own object', async () => {
    const layer = image.layers[0]!;
    const ranged = await fetch(`${redirecting.url}/v2/team/app/blobs/${layer.digest}`, { headers: { range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), layer.bytes!.subarray(100, 200));
    const location = (await fetch(`${redirecting.url}/v2/team/app/blobs/${layer.digest}`, { redirect: 'manual' })).headers.get('location')!;
    const other = secret.layers[0]!.digest.slice('sha256:'.length);
    const forged = location.replace(layer.digest.slice('sha256:'.length), other);
    assert.notEqual(forged, location);
    assert.equal((await fetch(forged)).status, 403, 'the signature covers the key');
    assert.equal((await fetch(location, { headers: { authorization: 'Bearer t' } })).status, 400, 'RGW refuses a presigned request that carries a token too');
  });

  it('checks the repository before redirecting, streams to a client whose token RGW would refuse, answers HEAD itself', async () => {
    const res = await fetch(`${redirecting.url}/v2/team/app/blobs/${secret.layers[0]!.digest}`, { redirect: 'manual' });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('location'), null);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN');
    const withToken = await fetch(`${redirecting.url}/v2/team/app/blobs/${image.layers[0]!.digest}`, { redirect: 'manual', headers: { authorization: 'Bearer t' } });
    assert.equal(withToken.status, 200, 'a client that would send its token on to RGW (same host name) is streamed to');
    assert.equal(Buffer.from(await withToken.arrayBuffer()).length, image.layers[0]!.size);
    // HTTP/1.0 without Host: whether the store has the client's host name is unknown, so it is streamed.
    const raw = await rawGet(redirecting.host, `/v2/team/app/blobs/${image.layers[0]!.digest}`, 'GET %s HTTP/1.0\r\nAuthorization: Bearer t\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 200 /);
    const head = await fetch(`${redirecting.url}/v2/team/app/blobs/${image.layers[0]!.digest}`, { method: 'HEAD', redirect: 'manual' });
    assert.equal(head.status, 200, 'a HEAD is answered by the mirror');
    assert.equal(head.headers.get('content-length'), String(image.layers[0]!.size));
  });

  it('stays off by default: the other replica streams the blobs itself', async () => {
    const pulled = await pullAndVerify(`${plain.host}/team/app:v1`);
    assert.equal(pulled.verified.length, 1 + image.layers.length);
    const statuses = blobGets.get(plain)!;
    assert.ok(statuses.length >= 1 + image.layers.length && statuses.every((s) => s === 200), `blob GETs: ${statuses.join(' ')}`);
  });
});
