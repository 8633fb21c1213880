import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { digestOf } from '../../lib/oci/digest.ts';
import { parseRange } from '../../lib/oci/range.ts';
import { UpstreamStatusError } from '../../lib/transfer/errors.ts';
import { basicAuthorization } from '../../lib/upstream/auth.ts';
import { UpstreamNotFoundError, UpstreamUnavailableError } from '../../lib/upstream/errors.ts';
import { UpstreamRequestError } from '../../lib/upstream/range-source.ts';
import { bytesOf, json, startServer, testClient, type TestServer } from './http-server.ts';
import { toRegistryError } from '../../server/errors.ts';

const blob = randomBytes(100_000);
const digest = digestOf(blob);
const creds = { username: 'alice', password: 'pw' };

/** Serves `blob` with Range support, as blob storage does. */
function serveBlob(req: IncomingMessage, res: ServerResponse): void {
  const r = parseRange(req.headers.range, blob.length);
  if (r.kind === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${blob.length}` });
    res.end();
    return;
  }
  const { start, end } = r.kind === 'partial' ? r.range : { start: 0, end: blob.length - 1 };
  const headers: Record<string, string> = { 'content-length': String(end - start + 1), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  if (r.kind === 'partial') headers['content-range'] = `bytes ${start}-${end}/${blob.length}`;
  res.writeHead(r.kind === 'partial' ? 206 : 200, headers);
  res.end(req.method === 'HEAD' ? undefined : blob.subarray(start, end + 1));
}

describe('UpstreamClient: blobs', () => {
  let cdn: TestServer;
  let registry: TestServer;
  afterEach(async () => {
    await registry?.close();
    await cdn?.close();
  });

  /** A registry behind Basic auth that redirects blob requests to a CDN on another origin. */
  async function start(redirectStatus = 307): Promise<void> {
    cdn = await startServer(serveBlob);
    registry = await startServer((req, res) => {
      if (req.headers.authorization !== basicAuthorization(creds.username, creds.password)) {
        return json(res, 401, {}, { 'www-authenticate': 'Basic realm="r"' });
      }
      if (req.url === `/v2/app/blobs/${digest}`) {
        res.writeHead(redirectStatus, { location: `${cdn.url}/store/${digest.slice(7)}?sig=abc` });
        return res.end();
      }
      json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
    });
  }

  it('follows a redirect to another origin without the Authorization header, keeping the Range', async () => {
    await start();
    const client = testClient(registry.url, creds);
    const res = await client.getBlob('app', digest, { start: 1000, end: 1999 });
    assert.equal(res.status, 206);
    assert.equal(res.size, blob.length);
    assert.deepEqual(await bytesOf(res.body), blob.subarray(1000, 2000));
    const atCdn = cdn.requests[0];
    assert.equal(atCdn?.headers.authorization, undefined, 'credentials never leave the registry origin');
    assert.equal(atCdn?.headers.range, 'bytes=1000-1999');
    assert.equal(atCdn?.url, `/store/${digest.slice(7)}?sig=abc`);
    assert.equal(registry.requests.at(-1)?.headers.range, 'bytes=1000-1999');
    await client.close();
  });

  for (const status of [302, 303]) {
    it(`follows a ${status} to blob storage too`, async () => {
      await start(status);
      const client = testClient(registry.url, creds);
      const res = await client.getBlob('app', digest);
      assert.equal(res.status, 200);
      assert.deepEqual(await bytesOf(res.body), blob);
      await client.close();
    });
  }

  it('streams an open-ended range from an offset', async () => {
    await start();
    const client = testClient(registry.url, creds);
    const res = await client.getBlob('app', digest, { start: 99_000 });
    assert.equal(cdn.requests[0]?.headers.range, 'bytes=99000-');
    assert.deepEqual(await bytesOf(res.body), blob.subarray(99_000));
    await client.close();
  });

  it('answers HEAD with size, range support and where the blob really is', async () => {
    await start();
    const client = testClient(registry.url, creds);
    const head = await client.headBlob('app', digest);
    assert.deepEqual(head, { size: blob.length, acceptRanges: true, url: `${cdn.url}/store/${digest.slice(7)}?sig=abc` });
    assert.equal(cdn.requests[0]?.method, 'HEAD');
    assert.equal(await client.headBlob('app', digestOf('nothing')), undefined);
    await client.close();
  });

  it('answers UpstreamNotFoundError (BLOB_UNKNOWN) for a blob the registry does not hold, without retrying', async () => {
    await start();
    const client = testClient(registry.url, creds);
    const missing = digestOf('missing');
    const before = registry.requests.length;
    const err = await client.getBlob('app', missing).catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamNotFoundError);
    assert.equal(toRegistryError(err).code, 'BLOB_UNKNOWN');
    assert.equal(registry.requests.length - before, 2, 'the challenge, then one authorized try');
    await client.close();
  });

  it('retries a blob request that fails before its headers', async () => {
    let failures = 2;
    cdn = await startServer((req, res) => (failures-- > 0 ? json(res, 503, {}) : serveBlob(req, res)));
    registry = await startServer((_req, res) => {
      res.writeHead(307, { location: `${cdn.url}/b` });
      res.end();
    });
    const client = testClient(registry.url);
    const res = await client.getBlob('app', digest, { start: 0, end: 9 });
    assert.deepEqual(await bytesOf(res.body), blob.subarray(0, 10));
    assert.equal(registry.requests.length, 3, 'each retry asks the registry again (a signed URL may have expired)');
    await client.close();
  });

  it('refuses a redirect loop', async () => {
    registry = await startServer((req, res) => {
      res.writeHead(302, { location: req.url ?? '/' });
      res.end();
    });
    const client = testClient(registry.url);
    await assert.rejects(client.getBlob('app', digest), /more than 5 redirects/);
    assert.equal(registry.requests.length, 6);
    await client.close();
  });

  it('gives up on a blob upstream that keeps answering 500', async () => {
    registry = await startServer((_req, res) => json(res, 500, {}));
    const client = testClient(registry.url, { retries: 1 });
    await assert.rejects(client.getBlob('app', digest), UpstreamUnavailableError);
    assert.equal(registry.requests.length, 2);
    await client.close();
  });
});

describe('rangeSource (the transfer engine\'s view of an upstream blob)', () => {
  let cdn: TestServer;
  let registry: TestServer;
  afterEach(async () => {
    await registry?.close();
    await cdn?.close();
  });

  it('fetches a range and the rest of the blob through the redirect, one request each', async () => {
    cdn = await startServer(serveBlob);
    registry = await startServer((_req, res) => {
      res.writeHead(307, { location: `${cdn.url}/b` });
      res.end();
    });
    const client = testClient(registry.url);
    const source = client.rangeSource('app', digest);
    const ac = new AbortController();
    const part = await source.fetchRange(10, 19, ac.signal);
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 10-19/${blob.length}`);
    assert.deepEqual(await bytesOf(part.body), blob.subarray(10, 20));
    const rest = await source.fetchAll(ac.signal, 50_000);
    assert.equal(cdn.requests[1]?.headers.range, 'bytes=50000-');
    assert.deepEqual(await bytesOf(rest.body), blob.subarray(50_000));
    const whole = await source.fetchAll(ac.signal);
    assert.equal(whole.status, 200);
    assert.equal(cdn.requests[2]?.headers.range, undefined);
    assert.deepEqual(await bytesOf(whole.body), blob);
    await client.close();
  });

  it('gives every concurrent range request its own TCP connection, up to the configured number', async () => {
    const sockets = new Set<number>();
    let inFlight = 0;
    let peak = 0;
    registry = await startServer(async (req, res) => {
      sockets.add(req.socket.remotePort ?? -1);
      peak = Math.max(peak, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 100));
      inFlight--;
      serveBlob(req, res);
    });
    const wide = testClient(registry.url, { connections: 8 });
    const ac = new AbortController();
    const source = wide.rangeSource('app', digest);
    const parts = await Promise.all(Array.from({ length: 8 }, (_, i) => source.fetchRange(i * 100, i * 100 + 99, ac.signal)));
    await Promise.all(parts.map((p) => bytesOf(p.body)));
    assert.equal(sockets.size, 8, 'eight ranges, eight connections');
    assert.equal(peak, 8);
    await wide.close();

    sockets.clear();
    peak = 0;
    const narrow = testClient(registry.url, { connections: 2 });
    const narrowSource = narrow.rangeSource('app', digest);
    const more = await Promise.all(Array.from({ length: 6 }, (_, i) => narrowSource.fetchRange(i * 100, i * 100 + 99, ac.signal).then((p) => bytesOf(p.body))));
    assert.deepEqual(more[5], blob.subarray(500, 600));
    assert.equal(sockets.size, 2, 'never more connections than configured');
    assert.equal(peak, 2, 'and never two requests on one connection at once');
    await narrow.close();
  });

  it('hands back an error status as it is, without retrying: the engine judges statuses', async () => {
    registry = await startServer((_req, res) => json(res, 503, { errors: [] }));
    const client = testClient(registry.url);
    const res = await client.rangeSource('app', digest).fetchRange(0, 9, new AbortController().signal);
    assert.equal(res.status, 503);
    assert.match((await bytesOf(res.body)).toString(), /errors/);
    assert.equal(registry.requests.length, 1);
    await client.close();
  });

  it('fails without retry when the credentials are refused at the token endpoint', async () => {
    const tokens = await startServer((_req, res) => json(res, 401, {}));
    registry = await startServer((_req, res) => json(res, 401, {}, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` }));
    const client = testClient(registry.url, creds);
    const err = await client.rangeSource('app', digest).fetchRange(0, 9, new AbortController().signal).catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamRequestError, String(err));
    assert.equal(err.retryable, false);
    assert.equal(toRegistryError(err.cause).code, 'DENIED');
    await Promise.all([client.close(), tokens.close()]);
  });

  it('keeps a token endpoint that is down retryable for the engine', async () => {
    const tokens = await startServer((_req, res) => json(res, 503, {}));
    registry = await startServer((_req, res) => json(res, 401, {}, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` }));
    const client = testClient(registry.url, { retries: 0 });
    const err = await client.rangeSource('app', digest).fetchRange(0, 9, new AbortController().signal).catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamStatusError, String(err));
    assert.equal(err.retryable, true);
    await Promise.all([client.close(), tokens.close()]);
  });
});
