/**
 * Three ferry replicas on one RGW bucket behind haproxy, configured by the README's scale-out
 * recipe (its storage section with keys in a credentials file; haproxy as the cluster tests run
 * it, which test/e2e/readme-scale-out.test.ts holds equal to the README's): dockerd pushes through
 * haproxy and pulls back through each replica alone; a push whose requests land on three different
 * replicas completes; RGW down for 10 s gives clear 503s, corrupts nothing, and the replicas serve
 * again without a restart.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { createS3Client } from '../../lib/storage/s3/client.ts';
import { loadIntoDockerd, pullAndVerify, pushedDigest, removeAllImages } from '../e2e/core-fixture.ts';
import { Teardown, dockerPull } from '../e2e/pull-through-fixture.ts';
import { useRgw } from '../helpers/ceph.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { runChecked } from '../helpers/processes.ts';
import { startReplicas, type Replicas } from '../helpers/replicas.ts';
import { startGateway, stopGateway } from '../helpers/rgw-gateway.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { credentialsFileText, recipeStorage, recipeUserCreateArgs } from './scale-out-recipe.ts';

const MiB = 1 << 20;
const OUTAGE_MS = 10_000;

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The upload URL a registry answered (Location), on another replica's base. */
function on(base: string, location: string): URL {
  return new URL(new URL(location, 'http://x').pathname + new URL(location, 'http://x').search, base);
}

async function errorCode(res: Response): Promise<{ status: number; code: string | undefined; message: string | undefined }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: Array<{ code?: string; message?: string }> };
  return { status: res.status, code: body.errors?.[0]?.code, message: body.errors?.[0]?.message };
}

describe('scale-out: 3 replicas on one RGW bucket behind haproxy (README recipe)', function () {
  this.timeout(180_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let replicas: Replicas;
  let dockerd: Dockerd;
  let image: BuiltImage;
  let dir: string;
  /** What docker push reported for scale/hello:v1. */
  let helloDigest = '';

  before(async function () {
    this.timeout(120_000);
    dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-scale-out-')), (d) => rm(d, { recursive: true, force: true }));
    // The README's user, its keys in the README's credentials file; the bucket made by that user.
    const user = JSON.parse(await runChecked('radosgw-admin', ['-c', join(rgw().dir, 'ceph.conf'), ...recipeUserCreateArgs()])) as { keys: Array<{ access_key: string; secret_key: string }> };
    const key = user.keys[0]!;
    const credentials = join(dir, 's3-credentials');
    await writeFile(credentials, credentialsFileText(key.access_key, key.secret_key), { mode: 0o600 });
    const bucket = `ferry-scale-out-${process.pid}`;
    const client = createS3Client({ endpoint: rgw().endpoint, region: rgw().region, forcePathStyle: true, requestTimeoutSeconds: 30, maxSockets: 4 }, { accessKeyId: key.access_key, secretAccessKey: key.secret_key });
    await client.send(new CreateBucketCommand({ Bucket: bucket })).finally(() => client.destroy());
    // requestTimeoutSeconds: an RGW that hangs fails a request in 5 s (a refused connection at once).
    const storage = { ...recipeStorage(rgw().endpoint, bucket, credentials), requestTimeoutSeconds: 5 } as ConfigInput['storage'];
    [image, replicas, dockerd] = await Promise.all([
      buildImage({ layers: [3 * MiB, 200_000], seed: 'scale-out-push', format: 'docker', runnable: { message: 'scale-out: pushed through haproxy' } }),
      startReplicas({ count: 3, config: { storage }, name: 'scale-out' }),
      startDockerd({ name: 'dockerd-scale-out' }),
    ]);
    teardown.add(replicas, (r) => r.stop());
    teardown.add(dockerd, (d) => d.stop());
  });
  after(() => teardown.run());

  it('docker push through haproxy; docker pull back through each replica alone, and run', async () => {
    const ref = `${replicas.host}/scale/hello:v1`;
    await loadIntoDockerd(dockerd, image, ref);
    const digest = pushedDigest(await dockerd.docker(['push', ref], { timeoutMs: 60_000 }));
    helloDigest = digest;
    for (const [i, r] of replicas.replicas.entries()) {
      await removeAllImages(dockerd);
      assert.equal(await dockerPull(dockerd, `${r.host}/scale/hello:v1`), digest, `replica ${i}`);
    }
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', `${replicas.replicas[2]!.host}/scale/hello:v1`]), image.runOutput);
  });

  it('a push whose POST, two PATCH chunks and closing PUT each land on another replica completes; every replica serves the blob', async () => {
    const [r0, r1, r2] = replicas.replicas.map((r) => r.url) as [string, string, string];
    // 6 MiB + 2 MiB: the first piece large enough to be copied server side as a multipart part.
    const first = randomBytes(6 * MiB);
    const second = randomBytes(2 * MiB);
    const digest = sha256(Buffer.concat([first, second]));
    const start = await fetch(`${r0}/v2/scale/split/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const patch = (base: string, location: string, body: Buffer, from: number): Promise<Response> => fetch(on(base, location), {
      method: 'PATCH', body, headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${from + body.length - 1}` },
    });
    const p1 = await patch(r1, start.headers.get('location')!, first, 0);
    assert.equal(p1.status, 202, await p1.text());
    const p2 = await patch(r2, p1.headers.get('location')!, second, first.length);
    assert.equal(p2.status, 202, await p2.text());
    const close = on(r0, p2.headers.get('location')!);
    close.searchParams.set('digest', digest);
    const done = await fetch(close, { method: 'PUT' });
    assert.equal(done.status, 201, await done.text());
    for (const base of [r0, r1, r2]) {
      const got = await fetch(`${base}/v2/scale/split/blobs/${digest}`);
      assert.equal(got.status, 200);
      assert.equal(sha256(Buffer.from(await got.arrayBuffer())), digest, base);
    }
  });

  it('RGW down for 10 s: 503 UNAVAILABLE naming the object store, a push session survives, nothing corrupt; served again without a restart', async () => {
    const pushed = await buildImage({ layers: [500_000], seed: 'scale-out-outage', format: 'docker' });
    await pushImage(pushed, replicas.host, 'scale/outage', 'v1');
    const blob = randomBytes(MiB);
    const digest = sha256(blob);
    const session = await fetch(`${replicas.url}/v2/scale/outage/blobs/uploads/`, { method: 'POST' });
    assert.equal(session.status, 202);
    const pids = replicas.replicas.map((r) => r.pid);

    await stopGateway(rgw());
    const down = Date.now();
    const answers: Array<{ status: number; code: string | undefined; message: string | undefined }> = [];
    const seen = new Set<string>();
    // Through haproxy and to each replica, for the whole outage: every answer a clear 503.
    while (Date.now() - down < OUTAGE_MS) {
      for (const base of [replicas.url, ...replicas.replicas.map((r) => r.url)]) {
        const res = await Promise.all([
          fetch(`${base}/v2/scale/outage/manifests/v1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } }).then(errorCode),
          fetch(`${base}/v2/scale/hello/blobs/${image.layers[0]!.digest}`).then(errorCode),
          fetch(`${base}/v2/scale/outage/blobs/uploads/`, { method: 'POST' }).then(errorCode),
        ]);
        answers.push(...res);
        for (const a of res) seen.add(`${a.status} ${a.code}`);
      }
    }
    assert.deepEqual([...seen], ['503 UNAVAILABLE'], JSON.stringify(answers.slice(0, 6)));
    assert.ok(answers.every((a) => /object store/.test(a.message ?? '')), `a 503 without the store named: ${JSON.stringify(answers.find((a) => !/object store/.test(a.message ?? '')))}`);
    assert.ok(answers.length >= 12 * 3, `only ${answers.length} answers in ${OUTAGE_MS} ms: requests hung`);
    await startGateway(rgw());

    // The same processes (no restart) serve again: what was stored before, and a new push.
    assert.deepEqual(replicas.replicas.map((r) => r.pid), pids);
    const resumed = on(replicas.url, session.headers.get('location')!);
    resumed.searchParams.set('digest', digest);
    const closed = await fetch(resumed, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(closed.status, 201, await closed.text());
    for (const r of replicas.replicas) {
      const pulled = await pullAndVerify(`${r.host}/scale/outage:v1`);
      assert.equal(sha256(pulled.manifest), pushed.manifestDigest);
      assert.equal(pulled.verified.length, 2);
      const got = await fetch(`${r.url}/v2/scale/outage/blobs/${digest}`);
      assert.equal(sha256(Buffer.from(await got.arrayBuffer())), digest);
    }
    await removeAllImages(dockerd);
    assert.equal(await dockerPull(dockerd, `${replicas.host}/scale/hello:v1`), helloDigest);
  });
});
