/**
 * What the S3 backend promises beyond the storage suite, on a real Ceph RGW: nothing visible
 * unverified (single put and multipart), uploads whose chunks land on different replicas,
 * server-side assembly across S3's 5 MiB part minimum, and the state it leaves in the bucket.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { MIN_PART_BYTES, type S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { planParts, wholePieces } from '../../lib/storage/s3/assemble.ts';
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import { useRgwBucket } from '../helpers/ceph.ts';
import { collect, rejection } from './expect.ts';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function bytesOf(stream: Readable | undefined): Promise<Buffer> {
  assert.ok(stream, 'expected a stream');
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Yields data in pieces of `step` bytes, as a request body arrives. */
function pieces(data: Buffer, step = 256 * 1024): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += step) yield data.subarray(i, i + step);
  })());
}

/** A source that delivers `data`, then fails as a cut connection does. */
function cutAfter(data: Buffer): Readable {
  return Readable.from((async function* () {
    yield data;
    throw new Error('socket hang up');
  })());
}

describe('S3 backend on Ceph RGW', function () {
  this.timeout(60_000);
  const { fresh } = useRgwBucket();
  let bucket: S3Bucket;
  let storage: S3Storage;

  beforeEach(async () => {
    bucket = fresh();
    storage = new S3Storage(bucket);
    await storage.init();
  });

  /** Every key and multipart upload left in this test's part of the bucket. */
  async function leftovers(): Promise<{ objects: string[]; multipart: string[] }> {
    return {
      objects: (await collect(bucket.list(''))).map((o) => o.key),
      multipart: (await collect(bucket.listMultipart(''))).map((u) => u.key),
    };
  }

  describe('blobs', () => {
    it('ingests a small blob by one put and a large one by multipart, both read back whole and by range', async () => {
      const small = randomBytes(1000);
      const large = randomBytes(17 * MiB + 5);
      assert.deepEqual(await storage.blobs.ingest(pieces(small), { digest: sha256(small) }), { digest: sha256(small), size: 1000 });
      assert.deepEqual(await storage.blobs.ingest(pieces(large), { digest: sha256(large), size: large.length }), { digest: sha256(large), size: large.length });
      assert.deepEqual(await bytesOf(await storage.blobs.read(sha256(large))), large);
      assert.deepEqual(await bytesOf(await storage.blobs.read(sha256(large), { start: 8 * MiB - 3, end: 8 * MiB + 2 })), large.subarray(8 * MiB - 3, 8 * MiB + 3));
      assert.equal((await storage.blobs.stat(sha256(small)))?.size, 1000);
      assert.deepEqual(await storage.blobs.readBytes(sha256(small)), small);
      assert.deepEqual((await leftovers()).multipart, []);
    });

    it('sends a blob by writeTo in batches, and stops without an error when the client goes away', async () => {
      const data = randomBytes(6 * MiB);
      await storage.blobs.ingest(pieces(data), { digest: sha256(data) });
      const writes: number[] = [];
      const whole = new Writable({
        writev(chunks, cb) { writes.push(chunks.reduce((n, c) => n + (c.chunk as Buffer).length, 0)); cb(); },
      });
      const stream = await storage.blobs.read(sha256(data));
      await stream!.writeTo!(whole);
      assert.equal(writes.reduce((a, b) => a + b, 0), data.length);
      assert.ok(writes.length < 20, `${writes.length} writes for 6 MiB: not batched`);
      let got = 0;
      const leaving = new Writable({
        write(chunk: Buffer, _enc, cb) {
          got += chunk.length;
          if (got > MiB) this.destroy();
          cb();
        },
      });
      const second = await storage.blobs.read(sha256(data));
      await second!.writeTo!(leaving);
      assert.ok(got < data.length && second!.destroyed, 'stopped reading once the client was gone');
    });

    it('names a large blob by its content when no digest was given (tmp, then copied into place)', async () => {
      const data = randomBytes(9 * MiB);
      assert.deepEqual(await storage.blobs.ingest(pieces(data)), { digest: sha256(data), size: data.length });
      assert.deepEqual(await leftovers(), { objects: [`blobs/sha256/${sha256(data).slice(7)}`], multipart: [] });
    });

    for (const size of [1000, 12 * MiB]) {
      it(`leaves nothing of a ${size}-byte ingest whose digest does not match: no object, no multipart upload`, async () => {
        const data = randomBytes(size);
        const wrong = sha256(Buffer.from('other'));
        const e = await rejection(storage.blobs.ingest(pieces(data), { digest: wrong }));
        assert.equal(e.situation, 'DIGEST_INVALID');
        assert.equal(await storage.blobs.has(wrong), false);
        assert.deepEqual(await leftovers(), { objects: [], multipart: [] });
      });
    }

    it('stops at the first byte past the expected size, and leaves nothing', async () => {
      const data = randomBytes(11 * MiB);
      const e = await rejection(storage.blobs.ingest(pieces(data), { digest: sha256(data), size: 6 * MiB }));
      assert.equal(e.situation, 'SIZE_INVALID');
      assert.match(e.message, /longer than the expected 6291456 bytes/);
      assert.deepEqual(await leftovers(), { objects: [], multipart: [] });
    });

    it('leaves nothing of a source that fails midway', async () => {
      const data = randomBytes(10 * MiB);
      await assert.rejects(storage.blobs.ingest(cutAfter(data), { digest: sha256(Buffer.concat([data, data])) }), /socket hang up/);
      assert.deepEqual(await leftovers(), { objects: [], multipart: [] });
    });

    it('keeps one blob when two replicas ingest the same digest at once', async () => {
      const data = randomBytes(6 * MiB);
      const other = new S3Storage(bucket);
      const results = await Promise.all([storage.blobs.ingest(pieces(data), { digest: sha256(data) }), other.blobs.ingest(pieces(data), { digest: sha256(data) })]);
      assert.deepEqual(results[0], results[1]);
      assert.deepEqual(await storage.blobs.readBytes(sha256(data)), data);
      assert.deepEqual(await leftovers(), { objects: [`blobs/sha256/${sha256(data).slice(7)}`], multipart: [] });
    });

    it('lists blobs with the later of their write and their last touch; a touch by one replica is seen by another', async () => {
      const a = await storage.blobs.putBytes(Buffer.from('a'));
      const b = await storage.blobs.putBytes(Buffer.from('b'));
      const written = (await storage.blobs.stat(a))?.touchedAt ?? 0;
      await new Promise((r) => setTimeout(r, 1100)); // LastModified has a resolution of one second
      await new S3Storage(bucket).blobs.touch(a);
      const listed = new Map((await collect(storage.blobs.list())).map((x) => [x.digest, x]));
      assert.deepEqual([...listed.keys()].sort(), [a, b].sort());
      assert.ok((listed.get(a)?.touchedAt ?? 0) > written, 'the touch moved a forward');
      // stat reads the touch's own time (ms, the toucher's clock), a listing its LastModified (the store's).
      assert.ok(Math.abs(((await storage.blobs.stat(a))?.touchedAt ?? 0) - (listed.get(a)?.touchedAt ?? 0)) < 1000);
      assert.equal(await storage.blobs.delete(a), true);
      assert.equal(await storage.blobs.delete(a), false);
      assert.deepEqual((await leftovers()).objects, [`blobs/sha256/${b.slice(7)}`]);
    });

    it('sweeps ingests abandoned by a dead replica (multipart uploads, tmp objects), not live ones', async () => {
      await bucket.createMultipart('blobs/sha256/' + 'a'.repeat(64));
      await bucket.put('tmp/0b1c2d3e-0000-4000-8000-000000000000', 'x');
      assert.equal(await storage.blobs.sweep(60_000), 0);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await storage.blobs.sweep(500), 2);
      assert.deepEqual(await leftovers(), { objects: [], multipart: [] });
    });

    it('sweeps touch records whose blob is gone (a touch that raced its delete), once old enough; keeps those of held blobs', async () => {
      const kept = await storage.blobs.putBytes(Buffer.from('kept'));
      const gone = await storage.blobs.putBytes(Buffer.from('gone'));
      await storage.blobs.touch(kept);
      assert.equal(await storage.blobs.delete(gone), true);
      // Another replica served `gone` just before the delete: its touch lands after it.
      await new S3Storage(bucket).blobs.touch(gone);
      // A touch record sorting after every blob (the walk must reach past the last blob).
      const last = `sha256:${'f'.repeat(64)}`;
      await storage.blobs.touch(last);
      assert.equal(await storage.blobs.sweep(60_000), 0);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await storage.blobs.sweep(500), 2);
      assert.deepEqual((await leftovers()).objects.sort(), [`blobs/sha256/${kept.slice(7)}`, `touched/sha256/${kept.slice(7)}`]);
    });
  });

  describe('uploads', () => {
    it('completes a push whose chunks land on three replicas, small and large mixed, assembled server side', async () => {
      const replicas = [storage, new S3Storage(bucket), new S3Storage(bucket)];
      const sizes = [1 * MiB, 300 * 1024, 7 * MiB, 2 * MiB, 6 * MiB + 1, 10];
      const data = randomBytes(sizes.reduce((a, b) => a + b, 0));
      const session = await replicas[0]!.uploads.create('team/app');
      let offset = 0;
      for (const [i, size] of sizes.entries()) {
        const replica = replicas[i % 3]!;
        const chunk = data.subarray(offset, offset + size);
        const state = await replica.uploads.append('team/app', session.uuid, pieces(chunk), { start: offset, end: offset + size - 1 }, size);
        offset += size;
        assert.equal(state.offset, offset);
        assert.equal((await replicas[(i + 1) % 3]!.uploads.get('team/app', session.uuid)).offset, offset);
      }
      const done = await replicas[1]!.uploads.complete('team/app', session.uuid, sha256(data));
      assert.deepEqual(done, { digest: sha256(data), size: data.length });
      assert.deepEqual(await replicas[2]!.blobs.readBytes(sha256(data)), data);
      assert.equal(await replicas[0]!.repositories.hasBlob('team/app', sha256(data)), true);
      await assert.rejects(replicas[0]!.uploads.get('team/app', session.uuid), /unknown/);
      assert.deepEqual(await leftovers(), { objects: [`blobs/sha256/${sha256(data).slice(7)}`, `repositories/team/app/_layers/sha256/${sha256(data).slice(7)}`], multipart: [] });
    });

    it('completes a one-chunk push (docker: one PATCH of unknown length) by a copy, its hash from the replica that received it', async () => {
      const data = randomBytes(12 * MiB);
      const session = await storage.uploads.create('app');
      await storage.uploads.append('app', session.uuid, pieces(data));
      assert.deepEqual(await storage.uploads.complete('app', session.uuid, sha256(data)), { digest: sha256(data), size: data.length });
      assert.deepEqual(await storage.blobs.readBytes(sha256(data)), data);
    });

    it('refuses a wrong digest and keeps the session; refuses a chunk out of place with the offset held', async () => {
      const data = randomBytes(100);
      const session = await storage.uploads.create('app');
      await storage.uploads.append('app', session.uuid, pieces(data), { start: 0, end: 99 }, 100);
      const out = await rejection(storage.uploads.append('app', session.uuid, pieces(data), { start: 50, end: 149 }, 100));
      assert.equal(out.situation, 'RANGE_INVALID');
      assert.equal(out.headers.Range, '0-99');
      const bad = await rejection(new S3Storage(bucket).uploads.complete('app', session.uuid, sha256(Buffer.from('x'))));
      assert.equal(bad.situation, 'DIGEST_INVALID');
      assert.equal((await storage.uploads.get('app', session.uuid)).offset, 100);
      await assert.rejects(storage.uploads.get('other', session.uuid), /unknown/);
      assert.deepEqual(await storage.uploads.complete('app', session.uuid, sha256(data)), { digest: sha256(data), size: 100 });
    });

    it('refuses whole a chunk shorter than its Content-Range, keeps what arrived of a cut one', async () => {
      const session = await storage.uploads.create('app');
      const short = await rejection(storage.uploads.append('app', session.uuid, pieces(randomBytes(10)), { start: 0, end: 19 }));
      assert.equal(short.situation, 'SIZE_INVALID');
      assert.equal((await storage.uploads.get('app', session.uuid)).offset, 0);
      const head = randomBytes(6 * MiB + 3);
      await assert.rejects(storage.uploads.append('app', session.uuid, cutAfter(head)), /socket hang up/);
      assert.equal((await storage.uploads.get('app', session.uuid)).offset, head.length);
      const tail = randomBytes(10);
      await storage.uploads.append('app', session.uuid, pieces(tail), { start: head.length, end: head.length + 9 });
      const whole = Buffer.concat([head, tail]);
      assert.deepEqual(await storage.uploads.complete('app', session.uuid, sha256(whole)), { digest: sha256(whole), size: whole.length });
      assert.deepEqual((await leftovers()).multipart, []);
    });

    it('cancels, and sweeps sessions idle on any replica (counted by every replica)', async () => {
      const a = await storage.uploads.create('app', 'alice');
      const b = await storage.uploads.create('app', 'bob');
      assert.equal(await storage.uploads.count({ name: 'app' }), 2);
      assert.equal(await storage.uploads.count({ client: 'alice' }), 1);
      await new S3Storage(bucket).uploads.cancel('app', a.uuid);
      await assert.rejects(storage.uploads.get('app', a.uuid), /unknown/);
      const restarted = new S3Storage(bucket);
      await restarted.init();
      assert.equal(await restarted.uploads.count(), 1);
      assert.equal(await restarted.uploads.sweep(60_000), 0);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await restarted.uploads.sweep(500), 1);
      assert.equal(await restarted.uploads.count(), 0);
      await assert.rejects(storage.uploads.get('app', b.uuid), /unknown/);
      assert.equal(await storage.uploads.sweep(500), 0);
      assert.equal(await storage.uploads.count(), 0, 'a session removed elsewhere no longer counts here');
      assert.deepEqual(await leftovers(), { objects: [], multipart: [] });
    });

    it('never admits sessions past a limit when replicas start them at once', async () => {
      const replicas = [0, 1, 2].map(() => new S3Storage(bucket, { uploadLimits: { perClient: 2, perRepository: 100 } }));
      const results = await Promise.allSettled(replicas.flatMap((r) => [r.uploads.create('app', 'alice'), r.uploads.create('app', 'alice')]));
      const admitted = results.filter((r) => r.status === 'fulfilled').length;
      assert.ok(admitted <= 2, `${admitted} sessions admitted past the limit of 2`);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { situation?: string }).situation, 'UPLOAD_SESSIONS_EXHAUSTED');
      assert.equal(await replicas[0]!.uploads.count({ client: 'alice' }), admitted, 'a refused session stayed in the bucket');
      // Room again: the next start is admitted.
      if (admitted === 2) await replicas[1]!.uploads.cancel('app', (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ uuid: string }>).value.uuid);
      await replicas[2]!.uploads.create('app', 'alice');
    });
  });

  describe('repositories', () => {
    it('keeps tags, links, referrers and origin as small objects every replica sees', async () => {
      const other = new S3Storage(bucket);
      const m = sha256(Buffer.from('manifest'));
      const r = sha256(Buffer.from('referrer'));
      await storage.repositories.linkManifest('team/app', m, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8 });
      await storage.repositories.linkManifest('team/app', r, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 8, subject: m, artifactType: 'x/sbom' });
      await storage.repositories.setTag('team/app', 'v1', m);
      await storage.repositories.setTag('team/app', 'latest', m);
      await storage.repositories.linkBlob('team/app', m);
      await storage.repositories.linkBlob('team/app', m);
      await storage.repositories.linkBlob('solo', r);
      assert.equal(await other.repositories.getTag('team/app', 'v1'), m);
      assert.deepEqual(await other.repositories.listTags('team/app'), ['latest', 'v1']);
      assert.deepEqual((await other.repositories.listManifests('team/app')).sort(), [m, r].sort());
      assert.deepEqual((await other.repositories.listReferrers('team/app', m)).map((d) => d.digest), [r]);
      assert.deepEqual(await other.repositories.listRepositories(), ['team/app']);
      assert.deepEqual(await other.repositories.listAllRepositories(), ['solo', 'team/app']);
      assert.equal(await other.repositories.exists('team'), false);
      assert.equal(await other.repositories.exists('solo'), true);
      const checked = await other.repositories.readTag('team/app', 'v1');
      assert.ok(checked);
      await new Promise((res) => setTimeout(res, 1100));
      await other.repositories.markTagChecked('team/app', 'v1', checked);
      assert.ok(((await storage.repositories.readTag('team/app', 'v1'))?.checkedAt ?? 0) > checked.checkedAt);
      assert.equal(await other.repositories.unlinkManifest('team/app', m), true);
      assert.deepEqual(await storage.repositories.listTags('team/app'), []);
      assert.deepEqual(await storage.repositories.listManifests('team/app'), [r]);
    });

    it('lets "local" win for good, whichever replica writes the origin first', async () => {
      const replicas = Array.from({ length: 6 }, () => new S3Storage(bucket));
      await Promise.all(replicas.map((s, i) => s.repositories.setOrigin('app', i % 2 === 0 ? 'cache' : 'local')));
      assert.equal(await storage.repositories.getOrigin('app'), 'local');
      await storage.repositories.setOrigin('app', 'cache');
      assert.equal(await storage.repositories.getOrigin('app'), 'local');
    });
  });

  describe('planParts', () => {
    const M = MIN_PART_BYTES;
    const sizes = (parts: ReturnType<typeof planParts>): number[] => parts.map((p) => p.segments.reduce((a, s) => a + s.end - s.start + 1, 0));

    it('copies pieces of 5 MiB or more server side, gathers small ones into 5 MiB parts with the head of the next', () => {
      const plan = planParts(wholePieces([{ key: 'a', size: M + 1 }, { key: 'b', size: 1000 }, { key: 'c', size: 3 * M }, { key: 'd', size: 10 }]));
      assert.deepEqual(plan.map((p) => p.copy), [true, false, true, false]);
      assert.deepEqual(sizes(plan), [M + 1, M, 2 * M + 1000, 10]);
      assert.deepEqual(plan[1]?.segments, [{ key: 'b', start: 0, end: 999 }, { key: 'c', start: 0, end: M - 1001 }]);
    });

    it('makes every part but the last at least 5 MiB, and cuts copies to the copy part size', () => {
      const pieces = Array.from({ length: 40 }, (_, i) => ({ key: `p${i}`, size: (i * 7919 * 1024) % (9 * M) + 1 }));
      const plan = planParts(wholePieces(pieces), M, 4 * M);
      const s = sizes(plan);
      assert.equal(s.reduce((a, b) => a + b, 0), pieces.reduce((a, p) => a + p.size, 0));
      assert.ok(s.slice(0, -1).every((x) => x >= M), 'parts before the last >= 5 MiB');
      assert.ok(plan.every((p, i) => !p.copy || (p.segments.length === 1 && (s[i] ?? 0) <= 4 * M)));
    });
  });
});
