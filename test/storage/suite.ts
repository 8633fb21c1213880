/**
 * The storage contract (lib/storage/storage.ts) as tests, run against every backend: each backend
 * calls storageSuite with a factory that gives a fresh, empty Storage (test/storage/fs.test.ts,
 * memory.test.ts; the S3 backend adds its own). Backend-specific promises (the fs backend's
 * crash safety) are tested beside the backend's call.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { digestOf } from '../../lib/oci/digest.ts';
import type { BlobStream, ManifestMeta, Storage, UploadLimits } from '../../lib/storage/storage.ts';

export interface StorageUnderTest {
  storage: Storage;
  /** Frees what the backend holds (temp dirs, buckets). */
  cleanup(): Promise<void>;
  /** Moves a blob's touchedAt ms into the past, where the backend can (then touch is tested to move it back). */
  ageBlob?(digest: string, ms: number): Promise<void>;
}

/** touchedAt and tag checks are times of the backend's clock, to its resolution (S3: whole seconds). */
const CLOCK_SLACK_MS = 1000;

export type StorageFactory = (opts?: { uploadLimits?: UploadLimits }) => Promise<StorageUnderTest>;

const MEDIA = 'application/vnd.oci.image.manifest.v1+json';
const d = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** The stream's bytes, by writeTo when the backend offers it (its fast path), else read. */
async function drain(stream: BlobStream): Promise<Buffer> {
  if (!stream.writeTo) return collect(stream);
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      cb();
    },
  });
  await stream.writeTo(sink);
  return Buffer.concat(parts);
}

async function listDigests(storage: Storage): Promise<string[]> {
  const out: string[] = [];
  for await (const b of storage.blobs.list()) out.push(b.digest);
  return out.sort();
}

/** A source that gives `bytes` in pieces, each after the previous was taken, then fails if told to. */
async function* pieces(bytes: Buffer, piece: number, failAfter?: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += piece) {
    if (failAfter !== undefined && at >= failAfter) throw new Error('source cut');
    yield bytes.subarray(at, at + piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (failAfter !== undefined) throw new Error('source cut');
}

/** Matches a RegistryError of the situation (lib/oci/errors.ts). */
function situation(expected: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.equal((e as { situation?: string }).situation, expected, `expected ${expected}, got ${String(e)}`);
    return true;
  };
}

export function storageSuite(name: string, factory: StorageFactory): void {
  describe(`storage contract: ${name}`, () => {
    let t: StorageUnderTest;
    let s: Storage;
    beforeEach(async () => {
      t = await factory();
      s = t.storage;
    });
    afterEach(async () => {
      await t.cleanup();
    });

    describe('blobs', () => {
      const big = randomBytes(2.5 * 1024 * 1024 + 17);
      const bigDigest = digestOf(big);

      it('ingests a stream checked against its digest and size, then serves it whole', async () => {
        const before = Date.now();
        const stored = await s.blobs.ingest(pieces(big, 300_000), { digest: bigDigest, size: big.length });
        assert.deepEqual(stored, { digest: bigDigest, size: big.length });
        const info = await s.blobs.stat(bigDigest);
        assert.equal(info?.digest, bigDigest);
        assert.equal(info?.size, big.length);
        assert.ok(info.touchedAt >= before - CLOCK_SLACK_MS && info.touchedAt <= Date.now() + CLOCK_SLACK_MS, `touchedAt ${info.touchedAt}`);
        assert.equal(await s.blobs.has(bigDigest), true);
        assert.ok((await s.blobs.readBytes(bigDigest)).equals(big));
        const whole = await s.blobs.read(bigDigest);
        assert.ok(whole);
        assert.ok((await collect(whole)).equals(big));
      });

      it('names content by its sha256 when no digest is expected', async () => {
        const bytes = Buffer.from('no expectation');
        assert.deepEqual(await s.blobs.ingest(Readable.from([bytes])), { digest: digestOf(bytes), size: bytes.length });
        assert.equal(await s.blobs.putBytes(Buffer.from('bytes')), digestOf('bytes'));
        assert.ok((await s.blobs.readBytes(digestOf('bytes'))).equals(Buffer.from('bytes')));
      });

      it('refuses a digest mismatch and keeps nothing of it', async () => {
        await assert.rejects(s.blobs.ingest(Readable.from([big]), { digest: d(1) }), situation('DIGEST_INVALID'));
        await assert.rejects(s.blobs.putBytes(Buffer.from('x'), d(1)), situation('DIGEST_INVALID'));
        assert.equal(await s.blobs.stat(d(1)), undefined);
        assert.equal(await s.blobs.has(digestOf(big)), false);
        assert.deepEqual(await listDigests(s), []);
      });

      it('refuses content longer or shorter than the expected size and keeps nothing of it', async () => {
        await assert.rejects(s.blobs.ingest(Readable.from([big]), { size: big.length - 1 }), situation('SIZE_INVALID'));
        await assert.rejects(s.blobs.ingest(Readable.from([big]), { digest: bigDigest, size: big.length + 1 }), situation('SIZE_INVALID'));
        assert.deepEqual(await listDigests(s), []);
      });

      it('keeps nothing of a source that fails midway', async () => {
        await assert.rejects(s.blobs.ingest(pieces(big, 100_000, 1_000_000), { digest: bigDigest }), /source cut/);
        assert.equal(await s.blobs.has(bigDigest), false);
        assert.deepEqual(await listDigests(s), []);
        assert.equal(await s.blobs.read(bigDigest), undefined);
      });

      it('is idempotent: a digest ingested twice is one blob', async () => {
        await s.blobs.ingest(Readable.from([big]), { digest: bigDigest });
        await s.blobs.ingest(Readable.from([big]), { digest: bigDigest });
        assert.equal(await s.blobs.putBytes(big, bigDigest), bigDigest);
        assert.deepEqual(await listDigests(s), [bigDigest]);
      });

      it('lets concurrent writers of one digest all succeed with one whole blob', async () => {
        const results = await Promise.all([0, 1, 2].map((i) => s.blobs.ingest(pieces(big, 200_000 + i * 7), { digest: bigDigest, size: big.length })));
        for (const r of results) assert.deepEqual(r, { digest: bigDigest, size: big.length });
        assert.deepEqual(await listDigests(s), [bigDigest]);
        assert.ok((await s.blobs.readBytes(bigDigest)).equals(big));
      });

      it('reads exact ranges, at the edges too, as a stream and by writeTo', async () => {
        await s.blobs.putBytes(big);
        const last = big.length - 1;
        const ranges = [[0, 0], [last, last], [0, last], [1, last - 1], [1024 * 1024 - 1, 1024 * 1024], [777, 2 * 1024 * 1024 + 5]] as const;
        for (const [start, end] of ranges) {
          const want = big.subarray(start, end + 1);
          const streamed = await s.blobs.read(bigDigest, { start, end });
          assert.ok(streamed);
          assert.ok((await collect(streamed)).equals(want), `read ${start}-${end}`);
          const sent = await s.blobs.read(bigDigest, { start, end });
          assert.ok(sent);
          assert.ok((await drain(sent)).equals(want), `writeTo ${start}-${end}`);
        }
      });

      it('answers undefined or BLOB_UNKNOWN for a blob it does not hold', async () => {
        assert.equal(await s.blobs.stat(d(2)), undefined);
        assert.equal(await s.blobs.has(d(2)), false);
        assert.equal(await s.blobs.read(d(2)), undefined);
        assert.equal(await s.blobs.read(d(2), { start: 0, end: 0 }), undefined);
        await assert.rejects(s.blobs.readBytes(d(2)), situation('BLOB_UNKNOWN'));
      });

      it('finishes a read opened before the blob was deleted', async () => {
        await s.blobs.putBytes(big);
        const open = await s.blobs.read(bigDigest);
        assert.ok(open);
        assert.equal(await s.blobs.delete(bigDigest), true);
        assert.ok((await collect(open)).equals(big));
      });

      it('deletes: gone from stat, has, read and list; a second delete is false', async () => {
        const a = await s.blobs.putBytes(Buffer.from('a'));
        const b = await s.blobs.putBytes(Buffer.from('b'));
        assert.equal(await s.blobs.delete(a), true);
        assert.equal(await s.blobs.delete(a), false);
        assert.equal(await s.blobs.has(a), false);
        assert.equal(await s.blobs.stat(a), undefined);
        assert.equal(await s.blobs.read(a), undefined);
        assert.deepEqual(await listDigests(s), [b]);
      });

      it('lists every blob with its size', async () => {
        const blobs = [Buffer.alloc(0), Buffer.from('one'), randomBytes(70_000)];
        for (const b of blobs) await s.blobs.putBytes(b);
        const listed = new Map<string, number>();
        for await (const b of s.blobs.list()) listed.set(b.digest, b.size);
        assert.deepEqual(listed, new Map(blobs.map((b) => [digestOf(b), b.length])));
      });

      it('touches a blob: touchedAt moves to now; touching a missing blob is nothing', async () => {
        const a = await s.blobs.putBytes(Buffer.from('touch me'));
        if (t.ageBlob) {
          await t.ageBlob(a, 3_600_000);
          const aged = await s.blobs.stat(a);
          assert.ok(aged && aged.touchedAt <= Date.now() - 3_600_000 + CLOCK_SLACK_MS, `aged touchedAt ${aged?.touchedAt}`);
        }
        const before = Date.now();
        await s.blobs.touch(a);
        const info = await s.blobs.stat(a);
        assert.ok(info && info.touchedAt >= before - CLOCK_SLACK_MS, `touchedAt ${info?.touchedAt} before ${before}`);
        await s.blobs.touch(d(3));
      });

      it('sweeps only abandoned ingests, never a blob', async () => {
        const a = await s.blobs.putBytes(Buffer.from('kept'));
        await assert.rejects(s.blobs.ingest(pieces(big, 100_000, 300_000)), /source cut/);
        assert.equal(typeof (await s.blobs.sweep(0)), 'number');
        assert.deepEqual(await listDigests(s), [a]);
      });

      it('keeps sidecar records per blob and key: read, overwrite, drop all of one blob', async () => {
        const a = await s.blobs.putBytes(Buffer.from('a'));
        const b = await s.blobs.putBytes(Buffer.from('b'));
        assert.equal(await s.blobs.readSidecar(a, 'chunks-65536.json'), undefined);
        await s.blobs.writeSidecar(a, 'chunks-65536.json', 'first');
        await s.blobs.writeSidecar(a, 'chunks-65536.json', 'second');
        await s.blobs.writeSidecar(a, 'chunks-131072.json', 'other');
        await s.blobs.writeSidecar(b, 'chunks-65536.json', 'of b');
        assert.equal(await s.blobs.readSidecar(a, 'chunks-65536.json'), 'second');
        await s.blobs.deleteSidecars(a);
        assert.equal(await s.blobs.readSidecar(a, 'chunks-65536.json'), undefined);
        assert.equal(await s.blobs.readSidecar(a, 'chunks-131072.json'), undefined);
        assert.equal(await s.blobs.readSidecar(b, 'chunks-65536.json'), 'of b');
        await assert.rejects(s.blobs.writeSidecar(a, '../escape', 'x'));
        await assert.rejects(s.blobs.writeSidecar(a, 'Upper', 'x'));
      });
    });

    describe('repositories', () => {
      const meta: ManifestMeta = { mediaType: MEDIA, size: 123 };

      it('links manifests with their meta, lists and unlinks them', async () => {
        const r = s.repositories;
        await r.linkManifest('app/one', d(1), { ...meta, annotations: { a: 'b' } });
        await r.linkManifest('app/one', d(2), meta);
        await r.linkManifest('app/one', d(2), meta);
        assert.deepEqual(await r.getManifestMeta('app/one', d(1)), { ...meta, annotations: { a: 'b' } });
        assert.equal(await r.getManifestMeta('app/one', d(3)), undefined);
        assert.equal(await r.getManifestMeta('app/two', d(1)), undefined);
        assert.deepEqual((await r.listManifests('app/one')).sort(), [d(1), d(2)]);
        assert.equal(await r.unlinkManifest('app/one', d(1)), true);
        assert.equal(await r.unlinkManifest('app/one', d(1)), false);
        assert.deepEqual(await r.listManifests('app/one'), [d(2)]);
        assert.deepEqual(await r.listManifests('never/was'), []);
      });

      it('keeps tags in lexical order, with when each was checked; unlinking a manifest drops its tags', async () => {
        const r = s.repositories;
        await r.linkManifest('app', d(1), meta);
        const before = Date.now();
        for (const tag of ['b', 'B', 'a', '10', '9', 'latest']) await r.setTag('app', tag, d(1));
        assert.deepEqual(await r.listTags('app'), ['10', '9', 'B', 'a', 'b', 'latest']);
        assert.equal(await r.getTag('app', 'latest'), d(1));
        assert.equal(await r.getTag('app', 'nope'), undefined);
        const checked = await r.readTag('app', 'latest');
        assert.ok(checked !== undefined && checked.digest === d(1) && checked.checkedAt >= before - CLOCK_SLACK_MS, `checked ${JSON.stringify(checked)}`);
        const mark = Date.now();
        await r.markTagChecked('app', 'latest', checked);
        assert.ok(((await r.readTag('app', 'latest'))?.checkedAt ?? 0) >= mark - CLOCK_SLACK_MS);
        assert.equal(await r.readTag('app', 'nope'), undefined);
        await r.setTag('app', 'latest', d(2));
        assert.equal(await r.getTag('app', 'latest'), d(2));
        // Set again since it was read: the old read marks nothing, the tag stays as set (digest and
        // when it was checked: a mark would move checkedAt, the clocks here have ms, slept past).
        const reset = await r.readTag('app', 'latest');
        await new Promise((resolve) => setTimeout(resolve, 25));
        await r.markTagChecked('app', 'latest', checked);
        assert.deepEqual(await r.readTag('app', 'latest'), reset);
        assert.equal(reset?.digest, d(2));
        assert.equal(await r.deleteTag('app', 'b'), true);
        assert.equal(await r.deleteTag('app', 'b'), false);
        await r.unlinkManifest('app', d(1));
        assert.deepEqual(await r.listTags('app'), ['latest']);
      });

      it('links blobs idempotently and unlinks them', async () => {
        const r = s.repositories;
        assert.equal(await r.hasBlob('app', d(5)), false);
        await r.linkBlob('app', d(5));
        await r.linkBlob('app', d(5));
        await r.linkBlob('app', d(6));
        assert.equal(await r.hasBlob('app', d(5)), true);
        assert.equal(await r.hasBlob('other', d(5)), false);
        assert.deepEqual((await r.listBlobs('app')).sort(), [d(5), d(6)]);
        assert.equal(await r.unlinkBlob('app', d(5)), true);
        assert.equal(await r.unlinkBlob('app', d(5)), false);
        assert.deepEqual(await r.listBlobs('app'), [d(6)]);
      });

      it('records referrers of a subject, in digest order, until their manifest is unlinked', async () => {
        const r = s.repositories;
        await r.linkManifest('app', d(9), { ...meta, subject: d(1), artifactType: 'application/x-sig', annotations: { k: 'v' } });
        await r.linkManifest('app', d(8), { ...meta, size: 50, subject: d(1) });
        await r.linkManifest('app', d(7), { ...meta, subject: d(2) });
        assert.deepEqual(await r.listReferrers('app', d(1)), [
          { mediaType: MEDIA, digest: d(8), size: 50 },
          { mediaType: MEDIA, digest: d(9), size: 123, artifactType: 'application/x-sig', annotations: { k: 'v' } },
        ]);
        assert.deepEqual(await r.listReferrers('other', d(1)), []);
        await r.unlinkManifest('app', d(9));
        assert.deepEqual((await r.listReferrers('app', d(1))).map((x) => x.digest), [d(8)]);
      });

      it('keeps an origin; local wins for good', async () => {
        const r = s.repositories;
        assert.equal(await r.getOrigin('app'), undefined);
        await r.setOrigin('app', 'cache');
        assert.equal(await r.getOrigin('app'), 'cache');
        await r.setOrigin('app', 'local');
        await r.setOrigin('app', 'cache');
        assert.equal(await r.getOrigin('app'), 'local');
      });

      it('lists the catalog (manifests or tags) and every repository with links, sorted', async () => {
        const r = s.repositories;
        assert.deepEqual(await r.listRepositories(), []);
        assert.equal(await r.exists('a/b'), false);
        await r.linkManifest('a/b', d(1), meta);
        await r.linkManifest('a', d(1), meta);
        await r.setTag('z', 'x', d(1));
        await r.linkBlob('m/only-blobs', d(2));
        assert.deepEqual(await r.listRepositories(), ['a', 'a/b', 'z']);
        assert.deepEqual(await r.listAllRepositories(), ['a', 'a/b', 'm/only-blobs', 'z']);
        for (const n of ['a', 'a/b', 'z', 'm/only-blobs']) assert.equal(await r.exists(n), true, n);
        assert.equal(await r.exists('m'), false);
      });

      it('refuses an invalid name, tag or digest', async () => {
        const r = s.repositories;
        await assert.rejects(r.linkBlob('../x', d(1)));
        await assert.rejects(r.setTag('app', '../t', d(1)));
        await assert.rejects(r.linkBlob('app', 'sha256:../../x'));
      });
    });

    describe('upload sessions', () => {
      const bytes = randomBytes(300_000);
      const digest = digestOf(bytes);

      it('takes chunks at the offset and completes into a linked blob', async () => {
        const u = s.uploads;
        const started = await u.create('app', 'alice');
        assert.equal(started.offset, 0);
        assert.equal(started.name, 'app');
        assert.equal(await u.count(), 1);
        assert.equal(await u.count({ client: 'alice' }), 1);
        assert.equal((await u.append('app', started.uuid, Readable.from([bytes.subarray(0, 100_000)]), { start: 0, end: 99_999 }, 100_000)).offset, 100_000);
        assert.equal((await u.append('app', started.uuid, Readable.from([bytes.subarray(100_000)]))).offset, bytes.length);
        assert.equal((await u.get('app', started.uuid)).offset, bytes.length);
        assert.deepEqual(await u.complete('app', started.uuid, digest), { digest, size: bytes.length });
        assert.ok((await s.blobs.readBytes(digest)).equals(bytes));
        assert.equal(await s.repositories.hasBlob('app', digest), true);
        await assert.rejects(u.get('app', started.uuid), situation('BLOB_UPLOAD_UNKNOWN'));
        assert.equal(await u.count(), 0);
      });

      it('refuses a wrong digest, keeps the session and makes no blob', async () => {
        const u = s.uploads;
        const { uuid } = await u.create('app');
        await u.append('app', uuid, Readable.from([bytes]));
        await assert.rejects(u.complete('app', uuid, d(1)), situation('DIGEST_INVALID'));
        assert.equal(await s.blobs.has(d(1)), false);
        assert.equal(await s.blobs.has(digest), false);
        assert.equal((await u.get('app', uuid)).offset, bytes.length);
        assert.deepEqual(await u.complete('app', uuid, digest), { digest, size: bytes.length });
      });

      it('checks a chunk against its Content-Range', async () => {
        const u = s.uploads;
        const { uuid } = await u.create('app');
        await u.append('app', uuid, Readable.from([bytes.subarray(0, 10)]));
        await assert.rejects(u.append('app', uuid, Readable.from([bytes.subarray(10, 20)]), { start: 5, end: 14 }), (e: unknown) => {
          assert.equal((e as { situation?: string }).situation, 'RANGE_INVALID');
          assert.deepEqual((e as { detail?: unknown }).detail, { offset: 10 });
          return true;
        });
        await assert.rejects(u.append('app', uuid, Readable.from([bytes.subarray(10, 20)]), { start: 10, end: 19 }, 11), situation('SIZE_INVALID'));
        await assert.rejects(u.append('app', uuid, Readable.from([bytes.subarray(10, 15)]), { start: 10, end: 19 }), situation('SIZE_INVALID'));
        assert.equal((await u.get('app', uuid)).offset, 10, 'a chunk that contradicts its range is not kept in part');
      });

      it('keeps what arrived of a cut chunk, so the client resumes from the offset', async () => {
        const u = s.uploads;
        const { uuid } = await u.create('app');
        await assert.rejects(u.append('app', uuid, Readable.from(pieces(bytes, 50_000, 100_000))), /source cut/);
        // What reached the backend before the cut (a write in flight may be lost with it).
        const { offset } = await u.get('app', uuid);
        assert.ok(offset <= 100_000, `offset ${offset}`);
        await u.append('app', uuid, Readable.from([bytes.subarray(offset)]), { start: offset, end: bytes.length - 1 });
        assert.deepEqual(await u.complete('app', uuid, digest), { digest, size: bytes.length });
        assert.ok((await s.blobs.readBytes(digest)).equals(bytes));
      });

      it('knows a session only under its own repository', async () => {
        const u = s.uploads;
        const { uuid } = await u.create('app');
        await assert.rejects(u.get('other', uuid), situation('BLOB_UPLOAD_UNKNOWN'));
        await assert.rejects(u.append('other', uuid, Readable.from([bytes])), situation('BLOB_UPLOAD_UNKNOWN'));
        await assert.rejects(u.get('app', '../../etc'), situation('BLOB_UPLOAD_UNKNOWN'));
        await assert.rejects(u.get('app', '00000000-0000-0000-0000-000000000000'), situation('BLOB_UPLOAD_UNKNOWN'));
      });

      it('cancels a session', async () => {
        const u = s.uploads;
        const { uuid } = await u.create('app');
        await u.append('app', uuid, Readable.from([bytes]));
        await u.cancel('app', uuid);
        await assert.rejects(u.get('app', uuid), situation('BLOB_UPLOAD_UNKNOWN'));
        await assert.rejects(u.cancel('app', uuid), situation('BLOB_UPLOAD_UNKNOWN'));
        assert.equal(await u.count(), 0);
      });

      it('takes one request at a time per session, and sweeps idle sessions but not a busy one', async () => {
        const u = s.uploads;
        const busy = await u.create('app');
        const idle = await u.create('app');
        const source = new PassThrough();
        const appending = u.append('app', busy.uuid, source);
        source.write(bytes.subarray(0, 1000));
        await assert.rejects(u.append('app', busy.uuid, Readable.from([bytes])), situation('UPLOAD_BUSY'));
        assert.equal(await u.sweep(3_600_000), 0, 'nothing is idle for an hour');
        // Idle for longer than -1 ms: every session no request is working on.
        assert.equal(await u.sweep(-1), 1);
        await assert.rejects(u.get('app', idle.uuid), situation('BLOB_UPLOAD_UNKNOWN'));
        source.end(bytes.subarray(1000));
        assert.equal((await appending).offset, bytes.length);
        assert.equal((await u.get('app', busy.uuid)).offset, bytes.length);
      });
    });

    describe('upload limits', () => {
      let limited: StorageUnderTest;
      beforeEach(async () => {
        limited = await factory({ uploadLimits: { perClient: 2, perRepository: 3 } });
      });
      afterEach(async () => {
        await limited.cleanup();
      });

      it('refuses a session past the per-client or per-repository limit until one ends', async () => {
        const u = limited.storage.uploads;
        const first = await u.create('app', 'alice');
        await u.create('app', 'alice');
        await assert.rejects(u.create('app', 'alice'), situation('UPLOAD_SESSIONS_EXHAUSTED'));
        await u.create('app', 'bob');
        await assert.rejects(u.create('app', 'carol'), situation('UPLOAD_SESSIONS_EXHAUSTED'));
        await u.create('other', 'bob');
        assert.equal(await u.count({ name: 'app' }), 3);
        await u.cancel('app', first.uuid);
        await u.create('app', 'carol');
      });
    });
  });
}
