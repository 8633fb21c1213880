/**
 * An upstream serving a corrupted blob: the pull fails cleanly, nothing enters the store, and once
 * the upstream serves the right bytes the same pull succeeds with the very bytes pushed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { buildImage, type BuiltImage, type LayerBlob } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { waitFor } from '../helpers/processes.ts';
import { startReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror, fsPaths } from './mirror-fixture.ts';
import { Teardown, dockerPull, storeTraces } from './pull-through-fixture.ts';

/** Answers a GET of the layer with its bytes, one of them flipped, honouring a Range header. */
function serveCorrupted(layer: LayerBlob & { bytes: Buffer }, req: IncomingMessage, res: ServerResponse): void {
  const bad = Buffer.from(layer.bytes);
  const at = Math.floor(bad.length / 2);
  bad[at] = (bad[at] as number) ^ 0xff;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range?.[2] ? Math.min(Number(range[2]), bad.length - 1) : bad.length - 1;
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': layer.digest,
    'accept-ranges': 'bytes',
    'content-length': String(end - start + 1),
  };
  if (range) headers['content-range'] = `bytes ${start}-${end}/${bad.length}`;
  res.writeHead(range ? 206 : 200, headers);
  res.end(bad.subarray(start, end + 1));
}

const HOLD_SECONDS = 4;

describe('pull-through: an upstream serving a corrupted blob', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  let image: BuiltImage;
  let layer: LayerBlob & { bytes: Buffer };
  let corrupting = true;
  let proxy: CountingProxy;
  let ferry: TestMirror;
  let dockerd: Dockerd;

  before(async () => {
    image = await buildImage({ layers: [600_000], seed: 'e2e-corrupt', runnable: { message: 'intact after all' } });
    const target = image.layers[1];
    assert.ok(target?.bytes);
    layer = target as LayerBlob & { bytes: Buffer };
    const registry = teardown.add(await startReferenceRegistry({ name: 'registry-corrupt' }), (r) => r.stop());
    await pushImage(image, registry.host, 'kolla/heat-api', 'zed');
    proxy = teardown.add(await startCountingProxy(registry.url, {
      intercept: (req, res) => {
        if (!corrupting || req.method !== 'GET' || !req.url?.endsWith(`/blobs/${layer.digest}`)) return false;
        serveCorrupted(layer, req, res);
        return true;
      },
    }), (p) => p.close());
    ferry = teardown.add(await startTestMirror({
      upstreams: { origin: { url: proxy.url } },
      rewrite: [{ match: 'kollaglue/*', upstream: 'origin', upstreamName: 'kolla/*' }],
      transfer: { badContentHoldSeconds: HOLD_SECONDS },
    }), (m) => m.stop());
    // dockerd retries a failed layer transfer 5 times, 5 s apart and more: once is enough here.
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-corrupt', daemonConfig: { 'max-download-attempts': 1 } }), (d) => d.stop());
  });
  after(() => teardown.run());

  const ref = (): string => `${ferry.host}/kollaglue/heat-api:zed`;

  it('makes docker pull exit non-zero with an error', async () => {
    const res = await dockerd.dockerRaw(['pull', ref()], { timeoutMs: 60_000 });
    assert.notEqual(res.code, 0, res.stdout);
    // ferry cuts the connection before the last byte (dockerd: `Get ".../blobs/sha256:...": EOF`),
    // or answers 502 when the content just failed verification, the reason phrase saying why
    // (server/errors.ts puts a 5xx's message there: dockerd prints only the status line).
    assert.match(res.stderr, /EOF|502 (Bad Gateway|the upstream keeps serving wrong content)/i);
    assert.ok((proxy.blobGets().get(layer.digest) ?? 0) >= 1, 'the corrupted layer was fetched');
  });

  it('answers 502 at once to a retry instead of fetching the bad content again', async () => {
    await waitFor(() => ferry.mirror.transfers.active.length === 0, 10_000, 'transfers to settle');
    const before = proxy.blobGets().get(layer.digest) ?? 0;
    const res = await fetch(`${ferry.url}/v2/kollaglue/heat-api/blobs/${layer.digest}`);
    assert.equal(res.status, 502);
    assert.match(await res.text(), /UPSTREAM_ERROR.*keeps serving wrong content.*same wrong bytes/);
    assert.equal(proxy.blobGets().get(layer.digest) ?? 0, before, 'no new upstream GET');
  });

  it('never hands a plain HTTP client the whole corrupted blob', async () => {
    const outcome = await fetch(`${ferry.url}/v2/kollaglue/heat-api/blobs/${layer.digest}`).then(
      async (res) => (res.status === 200 ? Buffer.from(await res.arrayBuffer()) : res.status),
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    ).catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
    assert.ok(!Buffer.isBuffer(outcome), `got ${Buffer.isBuffer(outcome) ? `${outcome.length} bytes` : ''}`);
  });

  it('keeps nothing of the corrupted blob in the store', async () => {
    await waitFor(() => ferry.mirror.transfers.active.length === 0, 10_000, 'transfers to settle');
    assert.deepEqual(await storeTraces(ferry, layer.digest), { blob: false, parts: [] });
  });

  it('pulls byte-identical content once the upstream serves it right', async () => {
    corrupting = false;
    await new Promise((r) => setTimeout(r, HOLD_SECONDS * 1000));
    assert.equal(await dockerPull(dockerd, ref()), image.manifestDigest);
    assert.deepEqual(await readFile(fsPaths(ferry.mirror.store).blob(layer.digest)), layer.bytes);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref()]), 'intact after all\n');
  });
});
