import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import {
  UpstreamNotFoundError, UpstreamProtocolError, UpstreamRateLimitedError, UpstreamUnavailableError,
} from '../../lib/upstream/errors.ts';
import { json, startServer, testClient, type TestServer } from './http-server.ts';
import { toRegistryError } from '../../server/errors.ts';

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: {}, layers: [] }));
const manifestDigest = digestOf(manifest);

function serveManifest(res: ServerResponse, bytes = manifest, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'content-length': String(bytes.length), 'docker-content-digest': digestOf(bytes), ...headers });
  res.end(bytes);
}

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('UpstreamClient: manifests', () => {
  let server: TestServer;
  afterEach(async () => server?.close());

  it('returns the manifest bytes, their type and their computed digest, asking for every manifest type', async () => {
    server = await startServer((_req, res) => serveManifest(res));
    const client = testClient(server.url);
    const m = await client.getManifest('app', 'v1');
    assert.deepEqual(m, { bytes: manifest, mediaType: MEDIA.ociManifest, digest: manifestDigest });
    assert.equal(server.requests[0]?.url, '/v2/app/manifests/v1');
    const accept = String(server.requests[0]?.headers.accept);
    for (const t of [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList]) assert.ok(accept.includes(t), t);
    await client.close();
  });

  it('takes the media type from the manifest when Content-Type does not name one', async () => {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    server = await startServer((_req, res) => serveManifest(res, index, { 'content-type': 'application/json' }));
    const client = testClient(server.url);
    assert.equal((await client.getManifest('app', 'v1')).mediaType, MEDIA.ociIndex);
    await client.close();
  });

  it('refuses a manifest whose bytes do not match the digest asked for, without retrying', async () => {
    const other = Buffer.from('{"schemaVersion":2,"manifests":[]}');
    server = await startServer((_req, res) => serveManifest(res, other, { 'docker-content-digest': manifestDigest }));
    const client = testClient(server.url);
    await assert.rejects(client.getManifest('app', manifestDigest), UpstreamProtocolError);
    assert.equal(server.requests.length, 1);
    await client.close();
  });

  it('refuses a manifest whose Docker-Content-Digest does not match its bytes', async () => {
    server = await startServer((_req, res) => serveManifest(res, manifest, { 'docker-content-digest': digestOf('other') }));
    const client = testClient(server.url);
    await assert.rejects(client.getManifest('app', 'v1'), /claims digest/);
    await client.close();
  });

  it('refuses a manifest over 4 MiB, declared or streamed', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    server = await startServer((req, res) => {
      if (req.url?.endsWith('/declared')) return serveManifest(res, big);
      res.writeHead(200, { 'content-type': MEDIA.ociManifest });
      res.end(big);
    });
    const client = testClient(server.url);
    await assert.rejects(client.getManifest('app', 'declared'), (e: unknown) => e instanceof UpstreamProtocolError && /exceeds/.test(e.message));
    await assert.rejects(client.getManifest('app', 'streamed'), (e: unknown) => e instanceof UpstreamProtocolError && /exceeds/.test(e.message));
    await client.close();
  });

  it('answers UpstreamNotFoundError for a 404, once, which maps to MANIFEST_UNKNOWN', async () => {
    server = await startServer((_req, res) => json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] }));
    const client = testClient(server.url);
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamNotFoundError);
    assert.equal(toRegistryError(err).code, 'MANIFEST_UNKNOWN');
    assert.equal(server.requests.length, 1, 'a 404 is not retried');
    await client.close();
  });

  it('revalidates a tag with HEAD: digest, type and size, or undefined when gone', async () => {
    server = await startServer((req, res) => {
      if (req.url?.endsWith('/gone')) return json(res, 404, {});
      serveManifest(res);
    });
    const client = testClient(server.url);
    assert.deepEqual(await client.headManifest('app', 'v1'), { digest: manifestDigest, mediaType: MEDIA.ociManifest, size: manifest.length });
    assert.equal(server.requests[0]?.method, 'HEAD');
    assert.equal(await client.headManifest('app', 'gone'), undefined);
    await client.close();
  });

  it('falls back to GET when a HEAD answer leaves out the digest', async () => {
    server = await startServer((req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'content-length': String(manifest.length) });
        return res.end();
      }
      serveManifest(res);
    });
    const client = testClient(server.url);
    assert.deepEqual(await client.headManifest('app', 'v1'), { digest: manifestDigest, mediaType: MEDIA.ociManifest, size: manifest.length });
    assert.deepEqual(server.requests.map((r) => r.method), ['HEAD', 'GET']);
    await client.close();
  });

  it('adds library/ to a one-component name on Docker Hub, and only there', async () => {
    server = await startServer((_req, res) => serveManifest(res));
    const hub = testClient(server.url, { kind: 'dockerhub' });
    const plain = testClient(server.url);
    await hub.getManifest('ubuntu', 'latest');
    await plain.getManifest('ubuntu', 'latest');
    await hub.getManifest('kolla/base', 'zed');
    assert.deepEqual(server.requests.map((r) => r.url), ['/v2/library/ubuntu/manifests/latest', '/v2/ubuntu/manifests/latest', '/v2/kolla/base/manifests/zed']);
    await Promise.all([hub.close(), plain.close()]);
  });

  it('keeps the path prefix of an upstream URL', async () => {
    server = await startServer((_req, res) => serveManifest(res));
    const client = testClient(`${server.url}/mirror/`);
    await client.getManifest('app', 'v1');
    assert.equal(server.requests[0]?.url, '/mirror/v2/app/manifests/v1');
    await client.close();
  });
});

describe('UpstreamClient: tags', () => {
  let server: TestServer;
  afterEach(async () => server?.close());

  it('follows Link pagination to the last page', async () => {
    const pages: Record<string, { tags: string[]; next?: string }> = {
      '/v2/app/tags/list': { tags: ['a', 'b'], next: '/v2/app/tags/list?last=b&n=2' },
      '/v2/app/tags/list?last=b&n=2': { tags: ['c', 'd'], next: '/v2/app/tags/list?last=d&n=2' },
      '/v2/app/tags/list?last=d&n=2': { tags: ['e'] },
    };
    server = await startServer((req, res) => {
      const page = pages[req.url ?? ''];
      if (!page) return json(res, 404, {});
      json(res, 200, { name: 'app', tags: page.tags }, page.next ? { link: `<${page.next}>; rel="next"` } : {});
    });
    const client = testClient(server.url);
    assert.deepEqual(await client.listTags('app'), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(server.requests.length, 3);
    await client.close();
  });

  it('reads "tags": null as no tags, and a missing repository as not found', async () => {
    server = await startServer((req, res) => (req.url?.startsWith('/v2/app/') ? json(res, 200, { name: 'app', tags: null }) : json(res, 404, {})));
    const client = testClient(server.url);
    assert.deepEqual(await client.listTags('app'), []);
    const err = await client.listTags('nope').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamNotFoundError);
    assert.equal(toRegistryError(err).code, 'NAME_UNKNOWN');
    await client.close();
  });

  it('refuses a Link that points back at a page already read', async () => {
    server = await startServer((_req, res) => json(res, 200, { tags: ['a'] }, { link: '</v2/app/tags/list>; rel="next"' }));
    const client = testClient(server.url);
    await assert.rejects(client.listTags('app'), /loop/);
    await client.close();
  });
});

describe('UpstreamClient: retries and timeouts', () => {
  let server: TestServer;
  afterEach(async () => server?.close());

  it('retries a 503 and then succeeds', async () => {
    server = await startServer((_req, res) => (server.requests.length <= 2 ? json(res, 503, {}) : serveManifest(res)));
    const client = testClient(server.url);
    assert.equal((await client.getManifest('app', 'v1')).digest, manifestDigest);
    assert.equal(server.requests.length, 3);
    await client.close();
  });

  it('retries after a connection reset and then succeeds', async () => {
    server = await startServer((req, res) => {
      if (server.requests.length === 1) return req.socket.destroy();
      serveManifest(res);
    });
    const client = testClient(server.url);
    assert.equal((await client.getManifest('app', 'v1')).digest, manifestDigest);
    assert.equal(server.requests.length, 2);
    await client.close();
  });

  it('honours Retry-After on a 429 before trying again', async () => {
    server = await startServer((_req, res) => (server.requests.length === 1 ? json(res, 429, {}, { 'retry-after': '1' }) : serveManifest(res)));
    const client = testClient(server.url);
    const started = Date.now();
    await client.getManifest('app', 'v1');
    const waited = Date.now() - started;
    assert.ok(waited >= 950, `waited ${waited} ms`);
    assert.equal(server.requests.length, 2);
    await client.close();
  });

  it('does not sit in a Retry-After longer than a minute: rate limited at once, with the wait', async () => {
    server = await startServer((_req, res) => json(res, 429, {}, { 'retry-after': '3600' }));
    const client = testClient(server.url);
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamRateLimitedError);
    assert.equal(err.retryAfterMs, 3_600_000);
    assert.equal(server.requests.length, 1);
    assert.equal(toRegistryError(err).headers['retry-after'], '3600');
    await client.close();
  });

  it('gives up after the configured retries with UpstreamUnavailableError (UPSTREAM_ERROR)', async () => {
    server = await startServer((_req, res) => json(res, 502, {}));
    const client = testClient(server.url, { retries: 2 });
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamUnavailableError);
    assert.equal(err.status, 502);
    assert.equal(server.requests.length, 3);
    assert.equal(toRegistryError(err).code, 'UPSTREAM_ERROR');
    await client.close();
  });

  it('answers UNAVAILABLE when nothing listens upstream', async () => {
    const client = testClient(await closedPortUrl(), { retries: 1 });
    const err = await client.ping().catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamUnavailableError, String(err));
    assert.equal(err.status, undefined);
    assert.equal(toRegistryError(err).code, 'UNAVAILABLE');
    await client.close();
  });

  it('times out an upstream that never sends headers (headersTimeoutMs)', async () => {
    server = await startServer(() => undefined);
    const client = testClient(server.url, { headersTimeoutMs: 200, retries: 1 });
    const started = Date.now();
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamUnavailableError, String(err));
    assert.equal((err.cause as { code?: string }).code, 'UND_ERR_HEADERS_TIMEOUT');
    assert.equal(server.requests.length, 2, 'a header timeout is retried');
    assert.ok(Date.now() - started < 5000);
    await client.close();
  });

  it('times out a body that stops flowing (bodyTimeoutMs) and fetches it again', async () => {
    server = await startServer((_req, res) => {
      if (server.requests.length > 1) return serveManifest(res);
      res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'content-length': String(manifest.length) });
      res.write(manifest.subarray(0, 10));
    });
    const client = testClient(server.url, { bodyTimeoutMs: 200 });
    assert.deepEqual((await client.getManifest('app', 'v1')).bytes, manifest);
    assert.equal(server.requests.length, 2);
    await client.close();
  });

  it('stops retrying when the caller aborts', async () => {
    server = await startServer((_req, res) => json(res, 503, {}, { 'retry-after': '30' }));
    const client = testClient(server.url);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const started = Date.now();
    await assert.rejects(client.getManifest('app', 'v1', ac.signal));
    assert.ok(Date.now() - started < 2000);
    await client.close();
  });
});
