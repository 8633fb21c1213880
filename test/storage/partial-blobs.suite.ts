/**
 * The PartialBlobStorage cases every backend must pass (lib/storage/partial-blobs.ts):
 * open/resume, positional writes, the ranges held (what a restart gets back never claims bytes
 * that are not stored), reads as a stream before and after the commit, the digest check of the
 * commit, discard, scratch, list/usage/sweep, the transfer state.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStorage } from '../../lib/storage/storage.ts';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';

export interface PartialBlobBackend {
  blobs: BlobStorage;
  partials: PartialBlobStorage;
  /**
   * The same storage as a new process sees it after this one was killed (-9): nothing was closed
   * or flushed. For a backend in memory, the same instance.
   */
  restarted(): Promise<PartialBlobStorage>;
  close(): Promise<void>;
}

function blobOf(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function bytesAt(p: { read(pos: number, into: Uint8Array): Promise<number> }, start: number, end: number): Promise<Buffer> {
  const buf = Buffer.alloc(end + 1 - start);
  let got = 0;
  while (got < buf.length) {
    const n = await p.read(start + got, buf.subarray(got));
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** Writes and records the rest of data from pos, then commits and closes the partial blob. */
async function commitFrom(p: PartialBlob, pos: number, data: Buffer, digest: string): Promise<void> {
  await p.write(pos, data.subarray(pos));
  await p.record({ start: pos, end: data.length - 1 });
  await p.flush();
  await p.commit(digest);
  await p.close();
}

export function partialBlobSuite(name: string, make: () => Promise<PartialBlobBackend>): void {
  describe(`PartialBlobStorage: ${name}`, () => {
    let b: PartialBlobBackend;
    beforeEach(async () => {
      b = await make();
    });
    afterEach(async () => {
      await b.close();
    });

    it('opens a new partial blob empty, and resumes what was recorded once it is closed and opened again', async () => {
      const { data, digest } = blobOf(64 * 1024);
      assert.equal(await b.partials.has(digest), false);
      const p = await b.partials.open(digest, data.length);
      assert.deepEqual(p.resumed, []);
      assert.equal(await b.partials.has(digest), true);
      // Out of order, as chunks arrive.
      await p.write(32 * 1024, data.subarray(32 * 1024, 48 * 1024));
      await p.record({ start: 32 * 1024, end: 48 * 1024 - 1 });
      await p.write(0, data.subarray(0, 16 * 1024));
      await p.record({ start: 0, end: 16 * 1024 - 1 });
      assert.ok((await bytesAt(p, 32 * 1024, 48 * 1024 - 1)).equals(data.subarray(32 * 1024, 48 * 1024)));
      await p.close();
      const again = await b.partials.open(digest, data.length);
      assert.deepEqual(again.resumed, [{ start: 0, end: 16 * 1024 - 1 }, { start: 32 * 1024, end: 48 * 1024 - 1 }]);
      assert.ok((await bytesAt(again, 0, 16 * 1024 - 1)).equals(data.subarray(0, 16 * 1024)));
      await again.close();
    });

    it('after a kill, resumes the recorded ranges and claims no byte that is not stored', async () => {
      const { data, digest } = blobOf(64 * 1024);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data.subarray(0, 20_000));
      await p.record({ start: 0, end: 19_999 });
      // Written, never recorded: a restart may drop it but must not claim more.
      await p.write(40_000, data.subarray(40_000, 50_000));
      const after = await b.restarted();
      const q = await after.open(digest, data.length);
      assert.ok(q.resumed.length > 0 && q.resumed[0]!.start === 0 && q.resumed[0]!.end >= 19_999, `resumed ${JSON.stringify(q.resumed)}`);
      for (const r of q.resumed) {
        assert.ok((await bytesAt(q, r.start, r.end)).equals(data.subarray(r.start, r.end + 1)), `bytes ${r.start}-${r.end} are not the ones written`);
        assert.ok(r.end < 20_000 || (r.start >= 40_000 && r.end < 50_000), `claims ${r.start}-${r.end}, never written`);
      }
      await q.close();
    });

    it('forgets what resetHeld leaves out', async () => {
      const { data, digest } = blobOf(10_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data);
      await p.record({ start: 0, end: 9_999 });
      await p.resetHeld([{ start: 0, end: 4_999 }]);
      await p.record({ start: 8_000, end: 8_999 });
      await p.close();
      const again = await b.partials.open(digest, data.length);
      assert.deepEqual(again.resumed, [{ start: 0, end: 4_999 }, { start: 8_000, end: 8_999 }]);
      await again.close();
    });

    it('streams a range of what is held, and the same range of the blob once committed', async () => {
      const { data, digest } = blobOf(100_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data.subarray(0, 60_000));
      await p.record({ start: 0, end: 59_999 });
      assert.ok((await collect(await b.partials.read(digest, { start: 1_000, end: 59_999 }))).equals(data.subarray(1_000, 60_000)));
      await commitFrom(p, 60_000, data, digest);
      assert.equal(await b.partials.has(digest), false, 'the partial blob became the blob');
      assert.ok((await collect(await b.partials.read(digest, { start: 99_000, end: 99_999 }))).equals(data.subarray(99_000)));
    });

    it('reads positionally what is held through a reader opened on the partial blob, and keeps reading after the commit (where the backend offers openReader)', async function () {
      if (!b.partials.openReader) this.skip();
      const { data, digest } = blobOf(100_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data.subarray(0, 60_000));
      await p.record({ start: 0, end: 59_999 });
      const reader = await b.partials.openReader(digest);
      try {
        assert.ok((await bytesAt(reader, 1_000, 59_999)).equals(data.subarray(1_000, 60_000)));
        await commitFrom(p, 60_000, data, digest);
        assert.equal(await b.partials.has(digest), false, 'the partial blob became the blob');
        assert.ok((await bytesAt(reader, 59_000, 99_999)).equals(data.subarray(59_000)));
        if (reader.readv) {
          // Several views filled in order by one read.
          const views = [Buffer.alloc(7), Buffer.alloc(30_000), Buffer.alloc(100)];
          assert.equal(await reader.readv(views, 20_000), 30_107);
          assert.ok(Buffer.concat(views).equals(data.subarray(20_000, 50_107)));
        }
      } finally {
        await reader.close();
      }
      const after = await b.partials.openReader(digest);
      try {
        assert.ok((await bytesAt(after, 99_000, 99_999)).equals(data.subarray(99_000)), 'a reader opened after the commit reads the blob');
      } finally {
        await after.close();
      }
      await assert.rejects(b.partials.openReader(`sha256:${'1'.repeat(64)}`));
    });

    it('commits into the blob store only with the digest the bytes have; nothing is visible otherwise', async () => {
      const { data, digest } = blobOf(30_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data);
      await p.record({ start: 0, end: data.length - 1 });
      const wrong = `sha256:${'0'.repeat(64)}`;
      await assert.rejects(p.commit(wrong), (e: Error & { situation?: string }) => /DIGEST_INVALID|does not match/.test(`${e.situation ?? ''} ${e.message}`));
      assert.equal(await b.blobs.has(digest), false, 'a blob became visible without its digest matching');
      await p.commit(digest);
      await p.close();
      assert.equal(await b.blobs.has(digest), true);
      assert.ok((await b.blobs.readBytes(digest)).equals(data));
    });

    it('discards a partial blob: gone, and a read of it fails', async () => {
      const { data, digest } = blobOf(10_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data);
      await p.record({ start: 0, end: 9_999 });
      await p.discard();
      assert.equal(await b.partials.has(digest), false);
      await assert.rejects(b.partials.read(digest, { start: 0, end: 9 }));
      const again = await b.partials.open(digest, data.length);
      assert.deepEqual(again.resumed, []);
      await again.discard();
    });

    it('keeps a scratch copy apart from the partial blob', async () => {
      const { data, digest } = blobOf(8_000);
      const p = await b.partials.open(digest, data.length);
      await p.write(0, data);
      const s = await p.scratch();
      const other = randomBytes(1_000);
      await s.write(2_000, other);
      assert.ok((await bytesAt(s, 2_000, 2_999)).equals(other));
      assert.ok((await bytesAt(p, 2_000, 2_999)).equals(data.subarray(2_000, 3_000)), 'the scratch wrote into the partial blob');
      await s.close();
      await p.discard();
    });

    it('lists, sums and sweeps partial blobs, sparing the ones kept', async () => {
      const one = blobOf(5_000);
      const two = blobOf(7_000);
      for (const x of [one, two]) {
        const p = await b.partials.open(x.digest, x.data.length);
        await p.write(0, x.data);
        await p.record({ start: 0, end: x.data.length - 1 });
        await p.close();
      }
      const listed = [];
      for await (const p of b.partials.list()) listed.push(p.digest);
      assert.deepEqual(listed.sort(), [one.digest, two.digest].sort());
      assert.deepEqual(await b.partials.usage(), { bytes: 12_000, count: 2 });
      assert.deepEqual(await b.partials.sweep(3600_000), [], 'a fresh partial blob was swept');
      assert.deepEqual(await b.partials.sweep(-1, (d) => d === two.digest), [one.digest]);
      assert.equal(await b.partials.has(one.digest), false);
      assert.equal(await b.partials.has(two.digest), true);
    });

    it('keeps small transfer state by key, replaced whole', async () => {
      assert.equal(await b.partials.readState('links'), undefined);
      await b.partials.writeState('links', '{"hub":1}');
      await b.partials.writeState('links', '{"hub":2}');
      assert.equal(await b.partials.readState('links'), '{"hub":2}');
      assert.equal(await (await b.restarted()).readState('links'), '{"hub":2}');
    });
  });
}
