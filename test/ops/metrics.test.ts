/** /metrics per server instance, request counting by route and status, the pieces behind the status page. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';
import { RecentErrors } from '../../lib/metrics/recent-errors.ts';
import { recordingPort } from '../../lib/metrics/recording-port.ts';
import { UpstreamHealth } from '../../lib/metrics/upstream-health.ts';
import type { UpstreamPort } from '../../lib/mirror/upstream-port.ts';

const sample = (text: string, line: string): number | undefined => {
  const m = new RegExp(`^${line.replace(/[{}"().]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('metrics', function () {
  this.timeout(30_000);
  let a: TestMirror;
  let b: TestMirror;
  before(async () => {
    [a, b] = await Promise.all([startTestMirror(), startTestMirror()]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('counts requests by route, method and status in a registry of its own instance', async () => {
    await fetch(`${a.url}/v2/`);
    await fetch(`${a.url}/v2/lokolla/none/manifests/v1`);
    await fetch(`${a.url}/v2/lokolla/none/manifests/v1`);
    const textA = await (await fetch(`${a.url}/metrics`)).text();
    const textB = await (await fetch(`${b.url}/metrics`)).text();
    assert.equal(sample(textA, 'ferry_http_requests_total{route="base",method="GET",status="200"}'), 1);
    assert.equal(sample(textA, 'ferry_http_requests_total{route="manifest",method="GET",status="404"}'), 2);
    assert.equal(sample(textB, 'ferry_http_requests_total{route="manifest",method="GET",status="404"}'), undefined);
    assert.ok((sample(textA, 'ferry_http_response_bytes_total{route="manifest"}') ?? 0) > 0);
    assert.match(textA, /^ferry_store_bytes 0$/m);
    assert.match(textA, /^ferry_cache_requests_total\{kind="blob",result="hit"\} 0$/m);
    assert.match(textA, /^ferry_process_resident_memory_bytes \d+/m);
  });

  it('counts cache hits and misses reported by the mirror layer, and shows the ratio', async () => {
    b.mirror.ops.metrics.cacheHit('blob');
    b.mirror.ops.metrics.cacheHit('manifest');
    b.mirror.ops.metrics.cacheHit('blob');
    b.mirror.ops.metrics.cacheMiss('blob');
    const text = await (await fetch(`${b.url}/metrics`)).text();
    assert.equal(sample(text, 'ferry_cache_requests_total{kind="blob",result="hit"}'), 2);
    assert.equal(sample(text, 'ferry_cache_requests_total{kind="blob",result="miss"}'), 1);
    const status = await (await fetch(`${b.url}/status.json`)).json() as { cache: { hitRatio: number } };
    assert.equal(status.cache.hitRatio, 0.75);
  });

  it('keeps client misses (404) apart from the recent errors, and not auth challenges or HEAD existence checks', async () => {
    await fetch(`${a.url}/v2/lokolla/none/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' });
    const status = await (await fetch(`${a.url}/status.json`)).json() as { errors: unknown[]; misses: Array<{ what: string; message: string }> };
    assert.deepEqual(status.misses.map((e) => e.message), ['MANIFEST_UNKNOWN', 'MANIFEST_UNKNOWN']);
    assert.equal(status.misses[0]?.what, 'GET /v2/lokolla/none/manifests/v1 → 404');
    assert.deepEqual(status.errors, [], 'a pre-warm\'s expected 404s are not failures');
  });

  it('lists a failed transfer among the recent errors, however many misses come after it', async () => {
    const good = Buffer.alloc(64 * 1024, 7);
    const digest = `sha256:${createHash('sha256').update(good).digest('hex')}`;
    // An upstream that serves other bytes than the digest says: the transfer fails verification.
    const upstream = createServer((req, res) => {
      if (req.url === '/v2/') { res.writeHead(200, { 'content-type': 'application/json' }).end('{}'); return; }
      if (req.url?.includes('/manifests/')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
        return;
      }
      res.writeHead(200, { 'content-length': good.length, 'content-type': 'application/octet-stream', 'docker-content-digest': digest });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(good.length, 8));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const m = await startTestMirror({ upstreams: { hub: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, retries: 0 } }, defaultUpstream: 'hub' });
    try {
      // The client is cut off before the last byte (or refused): either way the fetch fails or is not 200 complete.
      await fetch(`${m.url}/v2/team/app/blobs/${digest}`).then((r) => r.arrayBuffer()).catch(() => undefined);
      for (let i = 0; i < 60; i++) await fetch(`${m.url}/v2/lokolla/none${i}/manifests/v1`);
      let errors: Array<{ kind: string; digest?: string }> = [];
      for (let i = 0; i < 50 && !errors.some((e) => e.kind === 'transfer'); i++) {
        errors = ((await (await fetch(`${m.url}/status.json`)).json()) as { errors: typeof errors }).errors;
        if (!errors.some((e) => e.kind === 'transfer')) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(errors.some((e) => e.kind === 'transfer' && e.digest === digest), JSON.stringify(errors));
    } finally {
      await m.stop();
      upstream.close();
    }
  });

  it('answers /healthz and /readyz', async () => {
    assert.deepEqual(await (await fetch(`${a.url}/healthz`)).json(), { ok: true });
    assert.equal((await fetch(`${a.url}/readyz`)).status, 200);
  });
});

describe('recent errors ring', () => {
  it('keeps the newest N, newest first', () => {
    const r = new RecentErrors(3);
    for (let i = 0; i < 5; i++) r.push({ at: i, kind: 'request', what: String(i), message: '' });
    assert.deepEqual(r.list().map((e) => e.what), ['4', '3', '2']);
  });
});

describe('upstream health from real calls', () => {
  it('records answers (not found included) as healthy and network failures as failing', async () => {
    const health = new UpstreamHealth([{ name: 'hub', url: 'https://hub' }]);
    const notFound = Object.assign(new Error('manifest x not found'), { status: 404 });
    const reset = Object.assign(new Error('upstream hub: socket hang up'), { code: 'ECONNRESET' });
    const port = recordingPort('hub', {
      getManifest: () => Promise.reject(notFound),
      headManifest: () => Promise.resolve(undefined),
      headBlob: () => Promise.reject(reset),
      listTags: () => Promise.resolve([]),
      rangeSource: () => ({ fetchRange: () => Promise.reject(reset), fetchAll: () => Promise.reject(reset) }),
    } as UpstreamPort, health);
    await port.getManifest('a', 'b').catch(() => {});
    assert.equal(health.get('hub')?.ok, true);
    await port.headBlob('a', 'sha256:x').catch(() => {});
    assert.equal(health.get('hub')?.ok, false);
    assert.equal(health.get('hub')?.lastError, 'upstream hub: socket hang up');
    await port.listTags('a');
    assert.equal(health.get('hub')?.consecutiveFailures, 0);
    const aborted = new AbortController();
    aborted.abort();
    await port.rangeSource('a', 'd').fetchRange(0, 1, aborted.signal).catch(() => {});
    assert.equal(health.get('hub')?.ok, true, 'our own abort says nothing about the upstream');
  });
});
