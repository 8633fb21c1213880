/**
 * What a blob and a tag cost the object store (issue 15: prewarm on RGW took 2.5-3.5x the
 * filesystem's, a small blob ~25 S3 requests one after the other): one replica on RGW with a
 * cache limit (so serving touches), the S3 requests counted by a proxy in front of RGW.
 *
 *   cold          a pull-through GET of a blob below the piece size, from claim to commit, the
 *                 timed records (progress, held ranges, pieces) aside. Its commit is one PutObject
 *                 (21 requests before that, 19 after; 13 since the blob is looked at once per path).
 *   warm          a GET of that blob from the bucket: one look at the blob, one touch (its write,
 *                 no read of the touch record and no second look before it).
 *   revalidation  a GET of the manifest by tag past its TTL: the tag read once (with when it was
 *                 checked and its version), the check written over that read.
 *
 * Each counts by kind, so that a look or a touch added back anywhere on the path fails here.
 * Before (4a24097): cold 6 HEADs of the blob and 2 reads of its touch record among 19; warm 3
 * HEADs, 2 touch-record reads and 1 write; revalidation 3 reads of the tag.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRgw } from '../helpers/ceph.ts';
import { startCountingProxy, type CountingProxy, type ProxiedRequest } from '../helpers/counting-proxy.ts';
import { startTestMirrorsOnRgw, type TestMirror } from '../e2e/mirror-fixture.ts';
import { Teardown } from '../e2e/pull-through-fixture.ts';
import { linkConfig, readBlob, startUpstream, type Upstream } from '../e2e/transfer-fixture.ts';
import { waitFor } from '../helpers/processes.ts';

const KiB = 1024;
/** A cold small blob: the blob looked at by the request and by the lease holder (another replica may have committed it), its touch record untouched. */
const COLD = { blobHeads: 2, touchReads: 0, touchWrites: 0, counted: 13 };
/** A warm GET: the blob looked at once, touched once. */
const WARM = { blobHeads: 1, touchReads: 0, touchWrites: 1 };
/** Revalidating a tag: one read, one conditional write. */
const REVALIDATION = { tagReads: 1, tagWrites: 1 };

const isRead = (r: ProxiedRequest): boolean => r.method === 'GET' || r.method === 'HEAD';

describe('S3 requests of a blob and a tag', function () {
  this.timeout(60_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let upstream: Upstream;
  let s3: CountingProxy;
  let replica: TestMirror;

  /** The requests whose key names the digest's hex, as lines for a message. */
  const listing = (requests: readonly ProxiedRequest[], hex: string): string =>
    requests.map((r) => `${r.method} ${decodeURIComponent(r.path).replace(hex, '<hex>')}${r.query ? ` ${r.query.slice(0, 40)}` : ''}`).join('\n');
  /** Looks at the blob object and reads or writes of its touch record, among `requests`. */
  const blobKinds = (requests: readonly ProxiedRequest[], hex: string): { blobHeads: number; touchReads: number; touchWrites: number } => {
    const blob = requests.filter((r) => r.path.endsWith(`/blobs/sha256/${hex}`));
    const touch = requests.filter((r) => r.path.endsWith(`/touched/sha256/${hex}`));
    return { blobHeads: blob.filter((r) => r.method === 'HEAD').length, touchReads: touch.filter(isRead).length, touchWrites: touch.filter((r) => r.method === 'PUT').length };
  };

  before(async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-s3-requests-')), (d) => rm(d, { recursive: true, force: true }));
    upstream = teardown.add(await startUpstream({ layers: [200 * KiB, 100 * KiB], seed: 's3-request-count', runnable: false }), (u) => u.stop());
    s3 = teardown.add(await startCountingProxy(rgw().endpoint), (p) => p.close());
    // A cache limit far above what is pulled: the accounting touches what is served, nothing is evicted.
    // A TTL of 0: every GET of the manifest by tag revalidates it.
    const config = { ...linkConfig(upstream.registry.url, undefined), prefetch: { enabled: false }, cache: { maxBytes: 1024 * 1024 * 1024, manifestTtlSeconds: 0 }, storage: { endpoint: s3.url } };
    [replica] = await startTestMirrorsOnRgw(rgw(), { dir, teardown, configs: [config] });
    const manifest = await fetch(`${replica.url}/v2/${upstream.repository}/manifests/${upstream.tag}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
  });
  after(() => teardown.run());

  it('fills a blob below the piece size with few S3 requests, looking at it once per path', async () => {
    const layer = upstream.image.layers[0]!;
    // No prefetch (config): the manifest started no transfer, the layer is cold.
    s3.reset();
    const read = await readBlob(replica.url, upstream.repository, layer.digest);
    assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    await waitFor(() => replica.mirror.transfers.get(layer.digest) === undefined, 10_000, 'the transfer done');
    const hex = layer.digest.slice(7);
    const fill = s3.requests.filter((r) => r.path.includes(hex));
    const listed = listing(fill, hex);
    assert.ok(fill.some((r) => r.method === 'PUT' && r.path.includes('/cluster/leases/')), `no lease taken: the blob was not filled cold\n${listed}`);
    // Progress records, held ranges and pieces go out as time passes (every second or so; a piece
    // put is read again at commit), and so do the lease's renewals (its PUTs between the take and
    // the release, every ~1.7 s): not counted.
    const leasePuts = fill.filter((r) => r.method === 'PUT' && r.path.includes('/cluster/leases/'));
    const renewals = new Set(leasePuts.slice(1, -1));
    const timed = (r: ProxiedRequest): boolean => renewals.has(r) || r.path.includes('/pieces/') || (r.method === 'PUT' && (r.path.includes('/cluster/progress/') || r.path.endsWith('/held')));
    const counted = fill.filter((r) => !timed(r)).length;
    assert.deepEqual({ ...blobKinds(fill, hex), counted }, COLD, `for a cold ${layer.size}-byte blob (${fill.length - counted} timed requests aside):\n${listed}`);
  });

  it('serves a blob held in the bucket with one look at it and one touch', async () => {
    const layer = upstream.image.layers[0]!;
    const hex = layer.digest.slice(7);
    s3.reset();
    const read = await readBlob(replica.url, upstream.repository, layer.digest);
    assert.deepEqual({ status: read.status, bytes: read.bytes, digest: read.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    // The touch goes out beside the answer (best effort, not awaited): wait for it, then a moment for any other.
    await waitFor(() => blobKinds(s3.requests, hex).touchWrites > 0, 5000, 'the blob touched');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const served = s3.requests.filter((r) => r.path.includes(hex));
    assert.deepEqual(blobKinds(served, hex), WARM, listing(served, hex));
  });

  it('revalidates a tag with one read of it', async () => {
    s3.reset();
    const manifest = await fetch(`${replica.url}/v2/${upstream.repository}/manifests/${upstream.tag}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    const tagKey = `/repositories/up/${upstream.repository}/_tags/${upstream.tag}`;
    const tag = s3.requests.filter((r) => decodeURIComponent(r.path).endsWith(tagKey));
    const lines = tag.map((r) => `${r.method} ${decodeURIComponent(r.path)}`).join('\n');
    assert.deepEqual({ tagReads: tag.filter(isRead).length, tagWrites: tag.filter((r) => r.method === 'PUT').length }, REVALIDATION, lines);
  });
});
