/**
 * What a cold small blob costs the object store (issue 15: prewarm on RGW took 2.5-3.5x the
 * filesystem's, a small blob ~25 S3 requests one after the other): one replica on RGW, the S3
 * requests counted by a proxy in front of RGW, a pull-through GET of a blob below the piece size
 * from claim to commit, the timed records (progress, held ranges, pieces) aside. Before its commit became
 * one PutObject (a multipart upload for bytes below one part cost two requests more) it was 21; now 19.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRgw } from '../helpers/ceph.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startTestMirrorsOnRgw, type TestMirror } from '../e2e/mirror-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { linkConfig, readBlob, startUpstream, type Upstream } from '../e2e/transfer-fixture.ts';
import { waitFor } from '../helpers/processes.ts';

const KiB = 1024;
/** What a cold small blob's fill costs, timed records aside, and one more. */
const BOUND = 20;

describe('S3 requests of a cold small blob', function () {
  this.timeout(60_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let upstream: Upstream;
  let s3: CountingProxy;
  let replica: TestMirror;

  before(async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-s3-requests-')), (d) => rm(d, { recursive: true, force: true }));
    upstream = teardown.add(await startUpstream({ layers: [200 * KiB, 100 * KiB], seed: 's3-request-count', runnable: false }), (u) => u.stop());
    s3 = teardown.add(await startCountingProxy(rgw().endpoint), (p) => p.close());
    [replica] = await startTestMirrorsOnRgw(rgw(), { dir, teardown, configs: [{ ...linkConfig(upstream.registry.url, undefined), prefetch: { enabled: false }, storage: { endpoint: s3.url } }] });
  });
  after(() => teardown.run());

  it('fills a blob below the piece size with few S3 requests', async () => {
    const manifest = await fetch(`${replica.url}/v2/${upstream.repository}/manifests/${upstream.tag}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    const layer = upstream.image.layers[0]!;
    // No prefetch (config): the manifest started no transfer, the layer is cold.
    s3.reset();
    const read = await readBlob(replica.url, upstream.repository, layer.digest);
    assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    await waitFor(() => replica.mirror.transfers.get(layer.digest) === undefined, 10_000, 'the transfer done');
    const hex = layer.digest.slice(7);
    const fill = s3.requests.filter((r) => r.path.includes(hex));
    const listed = fill.map((r) => `${r.method} ${decodeURIComponent(r.path).replace(hex, '<hex>')}${r.query ? ` ${r.query.slice(0, 40)}` : ''}`);
    assert.ok(fill.some((r) => r.method === 'PUT' && r.path.includes('/cluster/leases/')), `no lease taken: the blob was not filled cold\n${listed.join('\n')}`);
    // Progress records, held ranges and pieces go out as time passes (every second or so; a piece
    // put is read again at commit): not counted.
    const timed = (r: { method: string; path: string }): boolean => r.path.includes('/pieces/') || (r.method === 'PUT' && (r.path.includes('/cluster/progress/') || r.path.endsWith('/held')));
    const counted = fill.filter((r) => !timed(r)).length;
    assert.ok(counted <= BOUND, `${counted} S3 requests (and ${fill.length - counted} timed ones) for a cold ${layer.size}-byte blob:\n${listed.join('\n')}`);
  });
});
