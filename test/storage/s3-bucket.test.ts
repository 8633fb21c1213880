/** The S3 primitives of the object-store backend against a real Ceph RGW (test/helpers/ceph.ts). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { MIN_PART_BYTES, S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { createS3Client } from '../../lib/storage/s3/client.ts';
import { useRgw } from '../helpers/ceph.ts';
import { collect, rejection } from './expect.ts';
import { freePort } from '../helpers/processes.ts';

async function text(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('S3 bucket primitives on Ceph RGW', function () {
  this.timeout(30_000);
  const rgw = useRgw();
  let root: S3Bucket;
  let bucket: S3Bucket;
  let n = 0;

  before(async () => {
    root = rgw().bucket(await rgw().createBucket(), 'ferry/');
  });
  beforeEach(() => { bucket = root.under(`t${++n}/`); });

  it('reads nothing where nothing was written, then what was written, whole or by range', async () => {
    assert.equal(await bucket.head('a'), undefined);
    assert.equal(await bucket.get('a'), undefined);
    assert.equal(await bucket.getText('a'), undefined);
    const etag = await bucket.put('a', '0123456789');
    const info = await bucket.head('a');
    assert.equal(info?.size, 10);
    assert.equal(info?.etag, etag);
    assert.doesNotMatch(etag ?? '', /"/);
    assert.equal(await bucket.getText('a'), '0123456789');
    const part = await bucket.get('a', { start: 3, end: 5 });
    assert.equal(part?.size, 10);
    assert.equal(await text(part!.body), '345');
  });

  it('writes a stream of known length without holding it', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    await bucket.put('s', { stream: Readable.from([data.subarray(0, 1000), data.subarray(1000)]), length: data.length });
    assert.deepEqual(await bucket.getBytes('s'), data);
  });

  it('puts if absent atomically: of 8 racing writers exactly one wins', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => bucket.putIfAbsent('lease', `writer ${i}`)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(await bucket.getText('lease'), `writer ${results.indexOf(true)}`);
  });

  it('compares and swaps on the etag', async () => {
    const first = await bucket.put('cas', 'v1');
    const second = await bucket.put('cas', 'v2', { ifMatch: first });
    assert.ok(second);
    assert.equal(await bucket.put('cas', 'v3', { ifMatch: first }), undefined);
    assert.equal(await bucket.getText('cas'), 'v2');
  });

  it('lists objects under a prefix in key order, after a key, and the folders under one', async () => {
    for (const k of ['d/b', 'd/a', 'd/sub/x', 'd/sub/y', 'e/z']) await bucket.put(k, k);
    assert.deepEqual((await collect(bucket.list('d/'))).map((o) => o.key), ['d/a', 'd/b', 'd/sub/x', 'd/sub/y']);
    assert.deepEqual((await collect(bucket.list('d/', { startAfter: 'd/b' }))).map((o) => o.key), ['d/sub/x', 'd/sub/y']);
    assert.deepEqual(await collect(bucket.listPrefixes('d/')), ['d/sub/']);
    assert.deepEqual(await collect(bucket.listPrefixes('')), ['d/', 'e/']);
    await bucket.deleteMany(['d/a', 'd/b', 'd/nothing']);
    await bucket.delete('e/z');
    await bucket.delete('e/z');
    assert.deepEqual((await collect(bucket.list(''))).map((o) => o.key), ['d/sub/x', 'd/sub/y']);
  });

  it('copies server side', async () => {
    await bucket.put('from', 'copied');
    await bucket.copy('from', 'to/here');
    assert.equal(await bucket.getText('to/here'), 'copied');
  });

  it('assembles a multipart object from uploaded and copied parts, visible only once complete', async () => {
    const a = randomBytes(MIN_PART_BYTES);
    const b = randomBytes(MIN_PART_BYTES + 10);
    await bucket.put('source', b);
    const id = await bucket.createMultipart('whole');
    assert.deepEqual((await collect(bucket.listMultipart(''))).map((u) => [u.key, u.uploadId]), [['whole', id]]);
    const parts = [
      await bucket.uploadPart('whole', id, 1, { stream: Readable.from([a]), length: a.length }),
      await bucket.uploadPartCopy('whole', id, 2, 'source', { start: 10, end: b.length - 1 }),
      await bucket.uploadPartCopy('whole', id, 3, 'source', { start: 0, end: 9 }),
    ];
    assert.equal(await bucket.head('whole'), undefined);
    await bucket.completeMultipart('whole', id, parts.reverse());
    assert.deepEqual(await bucket.getBytes('whole'), Buffer.concat([a, b.subarray(10), b.subarray(0, 10)]));
    assert.deepEqual(await collect(bucket.listMultipart('')), []);
  });

  it('aborts a multipart upload: no object, no upload left (twice is fine)', async () => {
    const id = await bucket.createMultipart('dropped');
    await bucket.uploadPart('dropped', id, 1, Buffer.from('x'));
    await bucket.abortMultipart('dropped', id);
    await bucket.abortMultipart('dropped', id);
    assert.equal(await bucket.head('dropped'), undefined);
    assert.deepEqual(await collect(bucket.listMultipart('')), []);
  });

  it('answers 503 STORAGE_UNAVAILABLE saying why: wrong keys, no bucket, nothing listening', async () => {
    const settings = { endpoint: rgw().endpoint, region: 'us-east-1', forcePathStyle: true, requestTimeoutSeconds: 5, maxSockets: 4 };
    const wrong = new S3Bucket(createS3Client(settings, { accessKeyId: rgw().accessKeyId, secretAccessKey: 'not-the-secret' }), bucket.bucket);
    const denied = await rejection(wrong.put('a', 'x'));
    assert.equal(denied.status, 503);
    assert.match(denied.message, /PUT .*\/a failed: .*refused ferry's credentials/);
    assert.doesNotMatch(denied.message, /not-the-secret/);
    const noBucket = new S3Bucket(rgw().client(), 'no-such-bucket-here');
    assert.match((await rejection(noBucket.put('a', 'x'))).message, /PUT no-such-bucket-here\/a failed: no such bucket/);
    const down = new S3Bucket(createS3Client({ ...settings, endpoint: `http://127.0.0.1:${await freePort()}` }, rgw()), 'b');
    const refused = await rejection(down.getText('a'));
    assert.equal(refused.situation, 'STORAGE_UNAVAILABLE');
    assert.match(refused.message, /GET b\/a failed: ECONNREFUSED/);
  });
});
