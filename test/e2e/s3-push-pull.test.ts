/**
 * Two mirror replicas on one Ceph RGW bucket (storage kind s3) behind haproxy round robin: dockerd
 * pushes an image whose upload requests land on both replicas, and each replica alone serves it
 * back (skopeo verifies every digest; dockerd pulls and runs it). Issue 15.1.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRgw } from '../helpers/ceph.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { loadIntoDockerd, pullAndVerify, pushedDigest } from './core-fixture.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull } from './pull-through-fixture.ts';

describe('mirror replicas on Ceph RGW behind haproxy: docker push, pull from each replica', function () {
  this.timeout(120_000);
  const rgw = useRgw();
  const teardown = new Teardown();
  let replicas: TestMirror[];
  let haproxy: Haproxy;
  let dockerd: Dockerd;
  let image: BuiltImage;
  let bucket: string;
  /** Upload requests (POST, PATCH, PUT of a session) each replica answered. */
  const uploads: string[][] = [[], []];

  before(async () => {
    const dir = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-s3-e2e-')), (d) => rm(d, { recursive: true, force: true }));
    const credentialsFile = await rgw().writeCredentialsFile(dir);
    bucket = await rgw().createBucket();
    [image, replicas] = await Promise.all([
      // A layer past S3's 5 MiB part minimum: multipart writes and server-side assembly.
      buildImage({ layers: [12 << 20, 30_000], seed: 's3-e2e', format: 'docker', runnable: { message: 'served from RGW' } }),
      Promise.all([0, 1].map(async (i) => teardown.add(
        await startTestMirror({ storage: rgw().storageConfig(bucket, { credentialsFile, prefix: 'ferry/' }) }, {}, join(dir, `replica-${i}`)),
        (m) => m.stop(),
      ))),
    ]);
    replicas.forEach((r, i) => r.mirror.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.includes('/blobs/uploads/')) res.on('finish', () => uploads[i]?.push(`${req.method} ${req.url} ${res.statusCode}`));
    }));
    // Checks every second (a check times out after its interval): at 200 ms a replica busy hashing
    // a layer on this loaded 2-core machine was marked down, and haproxy answered the push 503.
    haproxy = teardown.add(await startHaproxy({ backends: replicas.map((r) => ({ port: Number(r.host.split(':')[1]) })), checkIntervalMs: 1000 }), (h) => h.stop());
    await Promise.all(haproxy.servers.map((s) => haproxy.waitForState(s, 'UP')));
    dockerd = teardown.add(await startDockerd({ name: 'dockerd-s3' }), (d) => d.stop());
  });
  after(() => teardown.run());

  it('takes a docker push through haproxy whose upload requests land on both replicas', async () => {
    const ref = `${haproxy.host}/team/app:v1`;
    await loadIntoDockerd(dockerd, image, ref);
    const digest = pushedDigest(await dockerd.docker(['push', ref], { timeoutMs: 90_000 }));
    assert.ok(uploads[0]!.length > 0 && uploads[1]!.length > 0, `upload requests by replica: ${JSON.stringify(uploads)}`);
    assert.ok(uploads.flat().every((r) => / 20[12]$/.test(r)), `every upload request answered 201/202: ${JSON.stringify(uploads, null, 1)}`);
    const keys = [];
    for await (const o of rgw().bucket(bucket, 'ferry/').list('')) keys.push(o.key);
    assert.ok(keys.some((k) => k.startsWith('blobs/sha256/')), 'blobs are objects of the bucket');
    for (const r of replicas) assert.equal(existsSync(join(r.dataDir, 'blobs')), false, 'nothing of the store in a data dir');
    assert.ok(!keys.some((k) => k.startsWith('uploads/')), `no upload session left: ${keys.filter((k) => k.startsWith('uploads/')).join(', ')}\n${JSON.stringify(uploads, null, 1)}`);
    for (const r of replicas) {
      const pulled = await pullAndVerify(`${r.host}/team/app:v1`);
      assert.equal(pulled.verified.length, 1 + image.layers.length);
    }
    await dockerd.docker(['rmi', ref]);
    const fromSecond = `${replicas[1]!.host}/team/app:v1`;
    assert.equal(await dockerPull(dockerd, fromSecond), digest);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', fromSecond]), image.runOutput);
  });
});
