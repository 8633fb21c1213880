/**
 * Pull-through transfers in progress on the S3 backend, on a real Ceph RGW: positional writes
 * gathered into pieces, progress another replica resumes from (never past what the bucket holds),
 * reads as the blob grows from any replica, rewrites that win, commit assembled server side.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { PartialBlob } from '../../lib/storage/partial-blobs.ts';
import type { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { CONSOLIDATING, MEMORY_BYTES } from '../../lib/storage/s3/partial-blobs.ts';
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import { RangeSet } from '../../lib/transfer/range-set.ts';
import { useRgwBucket } from '../helpers/ceph.ts';
import { collect, rejection } from './expect.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Writes data[start..end] in 16 KiB writes through one reused buffer, recording each, as a connection of the engine does. */
async function fetchRange(part: { write(pos: number, b: Uint8Array): Promise<void>; record(r: { start: number; end: number }): Promise<void> }, data: Buffer, start: number, end: number): Promise<void> {
  const buf = Buffer.alloc(16 * KiB);
  // Like the engine, records are not waited for one by one: each is durable when its promise resolves.
  const recorded: Array<Promise<void>> = [];
  for (let pos = start; pos <= end; pos += buf.length) {
    const n = Math.min(buf.length, end + 1 - pos);
    data.copy(buf, 0, pos, pos + n);
    await part.write(pos, buf.subarray(0, n));
    buf.fill(0);
    recorded.push(part.record({ start: pos, end: pos + n - 1 }));
  }
  await Promise.all(recorded);
}

async function readAt(part: { read(pos: number, into: Uint8Array): Promise<number> }, pos: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const n = await part.read(pos + at, out.subarray(at));
    assert.ok(n > 0, `read at ${pos + at} returned nothing`);
    at += n;
  }
  return out;
}

describe('S3 partial blobs on Ceph RGW', function () {
  this.timeout(60_000);
  const { fresh } = useRgwBucket();
  let bucket: S3Bucket;

  beforeEach(() => { bucket = fresh(); });
  const replica = (): S3Storage => new S3Storage(bucket);

  /**
   * A partial blob of `size` random bytes (good) in this test's part of the bucket, and a copy of
   * them with [flip.start, flip.end) overwritten (bad: what a link that flips bytes delivered).
   * committedGood() commits it under the good digest and checks the blob holds the good bytes.
   */
  async function withPart(size: number, flip: { start: number; end: number }) {
    const good = randomBytes(size);
    const bad = Buffer.from(good);
    bad.fill(0xee, flip.start, flip.end);
    const digest = sha256(good);
    const part = await replica().partials.open(digest, good.length);
    return {
      good, bad, digest, part,
      async committedGood(): Promise<void> {
        await part.commit(digest);
        await part.close();
        assert.deepEqual(await replica().blobs.readBytes(digest), good);
      },
    };
  }

  it('gathers interleaved writes of three connections into pieces and commits them as the blob', async () => {
    const data = randomBytes(13 * MiB + 77);
    const store = replica();
    const part = await store.partials.open(sha256(data), data.length);
    assert.deepEqual(part.resumed, []);
    const third = Math.floor(data.length / 3);
    await Promise.all([
      fetchRange(part, data, 0, third - 1),
      fetchRange(part, data, third, 2 * third - 1),
      fetchRange(part, data, 2 * third, data.length - 1),
    ]);
    // Just written, read back (the prefix hash reads right behind the writes): from memory or the bucket.
    assert.deepEqual(await readAt(part, third - 100, 200), data.subarray(third - 100, third + 100));
    await part.flush();
    assert.deepEqual(await readAt(part, 0, data.length), data);
    await part.commit(sha256(data));
    await part.close();
    assert.deepEqual(await store.blobs.readBytes(sha256(data)), data);
    assert.deepEqual((await collect(bucket.list('partials/'))).map((o) => o.key), [], 'the partial is gone once committed and closed');
    assert.deepEqual(await collect(bucket.listMultipart('')), []);
  });

  it('resumes on another replica from what the bucket holds, never claiming a byte that was not recorded', async () => {
    const data = randomBytes(12 * MiB);
    const digest = sha256(data);
    const first = await replica().partials.open(digest, data.length);
    await fetchRange(first, data, 0, 6 * MiB - 1);
    await first.flush();
    // Written, some of it recorded, when the replica dies (no flush, no close): the records'
    // write-out may or may not have run.
    const buf = Buffer.from(data.subarray(6 * MiB, 7 * MiB));
    await first.write(6 * MiB, buf);
    void first.record({ start: 6 * MiB, end: 6 * MiB + 1000 });
    buf.fill(0);
    const second = await replica().partials.open(digest, data.length);
    assert.deepEqual(second.resumed[0], { start: 0, end: 6 * MiB - 1 });
    assert.ok(second.resumed.every((r) => r.end < 6 * MiB + 1001), `claims ${JSON.stringify(second.resumed)}: never recorded`);
    for (const r of second.resumed) assert.deepEqual(await readAt(second, r.start, r.end + 1 - r.start), data.subarray(r.start, r.end + 1));
    await fetchRange(second, data, 6 * MiB, data.length - 1);
    await second.commit(digest);
    await second.close();
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
  });

  /**
   * A replica about to die: from cutHeld() on its held records never land (each is the write a kill
   * -9 cuts: the bucket stays as it was before it; dropped here, so the write-outs go on), while its
   * pieces do. `write` writes data[start, end) back to back as one connection, recording each write.
   */
  function dyingReplica(data: Buffer, digest: string) {
    const heldKey = `partials/sha256/${digest.slice(7)}/held`;
    let cut = false;
    const dying = new Proxy(bucket, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'put') {
          return (key: string, ...rest: unknown[]) => (cut && key === heldKey ? Promise.resolve('dropped') : (value as (...a: unknown[]) => unknown).call(target, key, ...rest));
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return {
      open: () => new S3Storage(dying).partials.open(digest, data.length),
      cutHeld: () => { cut = true; },
      async write(part: PartialBlob, start: number, end: number, from = data): Promise<void> {
        for (let pos = start; pos < end; pos += 16 * KiB) {
          await part.write(pos, from.subarray(pos, pos + 16 * KiB));
          part.record({ start: pos, end: pos + 16 * KiB - 1 }).catch(() => {});
        }
      },
    };
  }

  it('resumes every recorded byte of the pieces that landed, also those put after the last held record (a kill -9 between a write-out\'s pieces and its held)', async () => {
    const data = randomBytes(6 * MiB);
    const digest = sha256(data);
    const dying = dyingReplica(data, digest);
    const part = await dying.open();
    // 1 MiB written and recorded, its held in the bucket; then 3 MiB more whose held records never land.
    await dying.write(part, 0, MiB);
    await part.flush();
    dying.cutHeld();
    await dying.write(part, MiB, 4 * MiB);
    // Back to back: the write-outs put pieces as they go; wait until they hold the 4 MiB (the last ones land after the writes).
    const listed = (): Promise<Array<{ size: number }>> => collect(bucket.list(`partials/sha256/${digest.slice(7)}/pieces/`));
    const pieces = (): Promise<number> => listed().then((l) => l.reduce((n, o) => n + o.size, 0));
    for (let i = 0; i < 100 && (await pieces()) < 3 * MiB; i++) await new Promise((r) => setTimeout(r, 50));
    const inBucket = await pieces();
    assert.ok(inBucket >= 3 * MiB, `${inBucket} bytes in pieces`);
    const successor = await replica().partials.open(digest, data.length);
    const resumed = successor.resumed.reduce((n, r) => n + r.end + 1 - r.start, 0);
    // Only what the pieces hold (never what stayed in memory), and all of it that was recorded when
    // it went out: all but a piece's last write at most, when the write-out began before its record.
    const allowed = inBucket - (await listed()).length * 16 * KiB;
    assert.ok(resumed >= allowed, `resumed ${JSON.stringify(successor.resumed)}: the pieces put after the last held record hold ${inBucket} bytes`);
    assert.equal(successor.resumed[0]?.start, 0);
    for (const r of successor.resumed) assert.deepEqual(await readAt(successor, r.start, r.end + 1 - r.start), data.subarray(r.start, r.end + 1));
    await fetchRange(successor, data, successor.resumed[0]!.end + 1, data.length - 1);
    await successor.commit(digest);
    await successor.close();
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
  });

  it('resumes no byte a repair forgot, also from pieces put after the held that forgot it', async () => {
    const good = randomBytes(6 * MiB);
    const bad = Buffer.from(good).fill(0xee, MiB, MiB + 1000);
    const digest = sha256(good);
    const dying = dyingReplica(good, digest);
    const part = await dying.open();
    // One connection back to back, as the engine writes (the run stays in memory between the steps).
    await dying.write(part, 0, 2 * MiB, bad);
    await part.flush();
    // The repair forgets the bad piece's range; the run goes on to a whole piece (its bad bytes go out
    // again, newer than the held that forgot them), and the replica dies before its next held.
    await part.resetHeld([{ start: 0, end: MiB - 1 }, { start: 1.5 * MiB, end: 2 * MiB - 1 }]);
    dying.cutHeld();
    await dying.write(part, 2 * MiB, 5.5 * MiB);
    // The run went out whole (5 MiB from 0, the forgotten bytes in it) before the replica died.
    const whole = (): Promise<boolean> => collect(bucket.list(`partials/sha256/${digest.slice(7)}/pieces/`)).then((l) => l.some((o) => o.size >= 5 * MiB));
    for (let i = 0; i < 200 && !(await whole()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(await whole(), 'the run never went out whole');
    const successor = await replica().partials.open(digest, good.length);
    assert.ok(successor.resumed.some((r) => r.start <= 2 * MiB && r.end >= 4 * MiB), `resumed ${JSON.stringify(successor.resumed)}: not the bytes recorded after the repair`);
    for (const r of successor.resumed) {
      assert.ok(r.end < MiB || r.start >= 1.5 * MiB, `resumed ${JSON.stringify(successor.resumed)}: claims the forgotten [1 MiB, 1.5 MiB)`);
      assert.deepEqual(await readAt(successor, r.start, r.end + 1 - r.start), good.subarray(r.start, r.end + 1));
    }
    await successor.discard();
    await part.abandon?.();
  });

  it('puts only pieces in the write-outs memory asks for; the held record goes out with the records\' timer, at most every second', async () => {
    const data = randomBytes(8 * MiB);
    const digest = sha256(data);
    const puts: string[] = [];
    const counting = new Proxy(bucket, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'put') return (key: string, ...rest: unknown[]) => { puts.push(key.endsWith('/held') ? 'held' : 'piece'); return (value as (...a: unknown[]) => unknown).call(target, key, ...rest); };
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const part = await new S3Storage(counting).partials.open(digest, data.length);
    puts.length = 0;
    const started = performance.now();
    for (let pos = 0; pos < data.length; pos += 16 * KiB) {
      await part.write(pos, data.subarray(pos, pos + 16 * KiB));
      part.record({ start: pos, end: pos + 16 * KiB - 1 }).catch(() => {});
    }
    const seconds = Math.floor((performance.now() - started) / 1000);
    const count = (what: string): number => puts.filter((p) => p === what).length;
    assert.ok(count('piece') >= 6, `puts ${puts.join(' ')}`);
    // Before, a held after each write-out's pieces: 4 in under a second of writes (main, load 14).
    assert.ok(count('held') <= 1 + seconds, `${count('held')} held records in ${seconds + 1} s of writes: ${puts.join(' ')}`);
    await part.flush();
    assert.deepEqual((await replica().partials.open(digest, data.length)).resumed, [{ start: 0, end: data.length - 1 }]);
    await part.close();
  });

  it('holds at most about one piece only in memory: a kill -9 loses no more, and a replica resumes the rest', async () => {
    const data = randomBytes(12 * MiB);
    const digest = sha256(data);
    const part = await replica().partials.open(digest, data.length);
    const bound = 2 * MEMORY_BYTES + 3 * 16 * KiB;
    let worst = 0;
    const onlyInMemory = (): number => {
      const shared = (part.sharedRanges?.() ?? []).reduce((n, r) => n + r.end + 1 - r.start, 0);
      return written.size - shared;
    };
    const written = new RangeSet();
    // Three connections as fast as memory goes: no time-based write-out can keep up.
    const connection = async (start: number, end: number): Promise<void> => {
      for (let pos = start; pos < end; pos += 16 * KiB) {
        await part.write(pos, data.subarray(pos, pos + 16 * KiB));
        written.add(pos, pos + 16 * KiB);
        void part.record({ start: pos, end: pos + 16 * KiB - 1 });
        worst = Math.max(worst, onlyInMemory());
      }
    };
    await Promise.all([connection(0, 4 * MiB), connection(4 * MiB, 8 * MiB), connection(8 * MiB, 12 * MiB)]);
    assert.ok(worst <= bound, `${worst} bytes recorded only in memory at worst (bound ${bound})`);
    // Killed now (no flush, no close): what the bucket says is held is all but a write-out or two.
    const resumed = (await replica().partials.open(digest, data.length)).resumed;
    const lost = data.length - resumed.reduce((n, r) => n + r.end + 1 - r.start, 0);
    assert.ok(lost <= 2 * bound, `${lost} bytes lost to a kill (bound ${2 * bound})`);
    await part.close();
  });

  it('puts a run\'s new bytes while its whole piece is still on its way: a slow 5 MiB PUT holds back no byte a kill -9 would lose', async () => {
    const data = randomBytes(7 * MiB);
    const digest = sha256(data);
    // A loaded RGW: every PUT of a whole piece (5 MiB and more) takes 6 s.
    let slowPuts = 0;
    const slow = new Proxy(bucket, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'put') {
          return async (key: string, body: Buffer | string, ...rest: unknown[]) => {
            if (body.length >= 5 * MiB) {
              slowPuts++;
              await new Promise((r) => setTimeout(r, 6000));
            }
            return (value as (...a: unknown[]) => unknown).call(target, key, body, ...rest);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const part = await new S3Storage(slow).partials.open(digest, data.length);
    // One connection at 2 MiB/s (the bench's link), 16 KiB writes each recorded, as the engine writes.
    const started = performance.now();
    const writing = (async () => {
      for (let pos = 0; pos < data.length; pos += 16 * KiB) {
        const due = started + (pos / (2 * MiB)) * 1000 - performance.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        await part.write(pos, data.subarray(pos, pos + 16 * KiB));
        part.record({ start: pos, end: pos + 16 * KiB - 1 }).catch(() => {});
      }
    })();
    // 1.5 s after the 5 MiB mark (past the records' timer), in the middle of the whole piece's PUT: killed.
    await new Promise((r) => setTimeout(r, started + 4000 - performance.now()));
    assert.equal(slowPuts, 1, 'the run went out whole');
    const resumed = (await replica().partials.open(digest, data.length)).resumed;
    const claimed = resumed.reduce((n, r) => n + r.end + 1 - r.start, 0);
    // All 7 MiB written by now; all but the last write-out's worth (a second of the records' timer, 2 MiB) is in the bucket (6.1 MiB).
    // Before, the bytes past the last small piece waited for the whole piece's PUT, and the writes after it for them: 4.0 MiB.
    assert.ok(claimed >= 5.5 * MiB, `resumed ${JSON.stringify(resumed)}: ${claimed} bytes`);
    // And every byte claimed is in the bucket, as written: a successor resuming from it builds on nothing that is not there.
    const successor = await replica().partials.open(digest, data.length);
    for (const r of resumed) assert.ok((await readAt(successor, r.start, r.end + 1 - r.start)).equals(data.subarray(r.start, r.end + 1)), `resumed ${r.start}-${r.end} differs from what was written`);
    await successor.close();
    await writing;
    await part.commit(digest);
    await part.close();
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
  });

  it('lets the runs of 8 connections each grow to a whole piece, so that the commit copies nearly all bytes server side', async () => {
    // 8 connections of 5.25 MiB: each run makes a whole 5 MiB piece before its connection ends
    // (when the runs were bounded at 20 MiB together, none did: every byte went through the replica at commit).
    const each = 5 * MiB + 256 * KiB;
    const data = randomBytes(8 * each);
    const digest = sha256(data);
    const part = await replica().partials.open(digest, data.length);
    await Promise.all(Array.from({ length: 8 }, (_, i) => fetchRange(part, data, i * each, (i + 1) * each - 1)));
    // The whole pieces go out in the background; the commit waits for them (and the pieces stay until the close).
    await part.commit(digest);
    const pieces = await collect(bucket.list(`partials/sha256/${digest.slice(7)}/pieces/`));
    const whole = pieces.filter((p) => p.size >= 5 * MiB).reduce((n, p) => n + p.size, 0);
    assert.ok(whole >= 0.9 * 8 * 5 * MiB, `${whole} of ${data.length} bytes in pieces of 5 MiB or more`);
    await part.close();
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
  });

  it('puts at most CONSOLIDATING whole pieces at once, however many runs of one write-out make a whole piece together (found in review)', async () => {
    // 8 connections of 5.25 MiB written as fast as memory goes, on an RGW where a whole piece's PUT takes 300 ms.
    let putting = 0;
    let peak = 0;
    const slow = new Proxy(bucket, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'put') {
          return async (key: string, body: Buffer | string, ...rest: unknown[]) => {
            if (body.length < 5 * MiB) return (value as (...a: unknown[]) => unknown).call(target, key, body, ...rest);
            peak = Math.max(peak, ++putting);
            try {
              await new Promise((r) => setTimeout(r, 300));
              return await (value as (...a: unknown[]) => Promise<unknown>).call(target, key, body, ...rest);
            } finally {
              putting--;
            }
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const each = 5 * MiB + 256 * KiB;
    const data = randomBytes(8 * each);
    const digest = sha256(data);
    const part = await new S3Storage(slow).partials.open(digest, data.length);
    await Promise.all(Array.from({ length: 8 }, (_, i) => fetchRange(part, data, i * each, (i + 1) * each - 1)));
    await part.flush();
    await part.commit(digest);
    await part.close();
    assert.ok(peak >= 2, `whole pieces went out one at a time (peak ${peak}): the bound was not exercised`);
    assert.ok(peak <= CONSOLIDATING, `${peak} whole pieces put at once (bound ${CONSOLIDATING})`);
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
  });

  it('keeps a run\'s small pieces until the commit: a replica that resumed them while the old writer went on commits from what it listed', async () => {
    const data = randomBytes(8 * MiB);
    const digest = sha256(data);
    const old = await replica().partials.open(digest, data.length);
    await fetchRange(old, data, 0, 3 * MiB - 1);
    await old.flush();
    // Its lease lost, another replica takes the transfer over and resumes the small pieces...
    const successor = await replica().partials.open(digest, data.length);
    assert.deepEqual(successor.resumed, [{ start: 0, end: 3 * MiB - 1 }]);
    // ...while the old writer, not told yet, completes its run: it goes out whole as one piece,
    // shadowing the small pieces the successor reads and assembles.
    await fetchRange(old, data, 3 * MiB, 6 * MiB - 1);
    await old.flush();
    assert.deepEqual(await readAt(successor, 0, 3 * MiB), data.subarray(0, 3 * MiB));
    await fetchRange(successor, data, 3 * MiB, data.length - 1);
    await successor.commit(digest);
    await successor.close();
    // Told at last, the old writer lets go without a write: nothing of the partial blob is left.
    await old.abandon?.();
    assert.deepEqual(await replica().blobs.readBytes(digest), data);
    assert.equal(await replica().partials.has(digest), false);
    assert.deepEqual(await collect(bucket.list('')).then((l) => l.map((o) => o.key).filter((k) => k.startsWith('partials/'))), []);
  });

  it('writes nothing to the bucket past its fence (a cluster holder whose lease renewal is late), and fails the writes once the fence rejects', async () => {
    const data = randomBytes(3 * MiB);
    const digest = sha256(data);
    const pieces = (): Promise<unknown[]> => collect(bucket.list(`partials/sha256/${digest.slice(7)}/pieces/`));
    const part = await replica().partials.open(digest, data.length);
    let open!: () => void;
    let asked = 0;
    const gate = new Promise<void>((resolve) => (open = resolve));
    part.fence?.(() => { asked++; return gate; });
    // Past MEMORY_BYTES a write-out is due: it waits at the fence.
    const recorded: Array<Promise<void>> = [];
    for (let pos = 0; pos < 1.5 * MiB; pos += 64 * KiB) {
      await part.write(pos, data.subarray(pos, pos + 64 * KiB));
      recorded.push(part.record({ start: pos, end: pos + 64 * KiB - 1 }));
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(asked >= 1, 'no write-out came to the fence');
    assert.deepEqual(await pieces(), [], 'a piece went out past the fence');
    open();
    await Promise.all(recorded);
    assert.ok((await pieces()).length > 0, 'the write-out went out once the fence opened');
    // Lost: the fence rejects, and so does every write-out after it.
    part.fence?.(() => Promise.reject(new Error('lease lost')));
    await part.write(1.5 * MiB, data.subarray(1.5 * MiB, 2 * MiB));
    await assert.rejects(part.record({ start: 1.5 * MiB, end: 2 * MiB - 1 }), /lease lost/);
    await part.abandon?.();
  });

  it('lets a rewrite (a repair) win over the bytes it replaces, in reads and in the blob', async () => {
    const { good, bad, part, committedGood } = await withPart(7 * MiB, { start: 3 * MiB, end: 3 * MiB + 1000 });
    await fetchRange(part, bad, 0, good.length - 1);
    await part.flush();
    assert.equal(await rejection(part.commit(sha256(bad))).then((e) => e.situation), 'DIGEST_INVALID');
    await part.resetHeld([{ start: 0, end: 3 * MiB - 1 }, { start: 4 * MiB, end: good.length - 1 }]);
    await fetchRange(part, good, 3 * MiB, 4 * MiB - 1);
    await part.flush();
    assert.deepEqual(await readAt(part, 3 * MiB - 10, 1020), good.subarray(3 * MiB - 10, 3 * MiB + 1010));
    await committedGood();
  });

  it('never puts a run\'s bytes that a repair wrote over again, when the run grows to a whole piece', async () => {
    const { good, bad, digest, part, committedGood } = await withPart(6 * MiB, { start: 1000, end: 2000 });
    // Back to back, as connections write (no pause that would let the first run leave memory):
    const write = async (from: Buffer, start: number, end: number): Promise<void> => {
      for (let pos = start; pos < end; pos += 16 * KiB) await part.write(pos, from.subarray(pos, pos + 16 * KiB));
      void part.record({ start, end: end - 1 });
    };
    // a connection writes the first MiB (a flipped byte in it); the piece check fails and the
    // first 64 KiB are fetched again, right; the first connection goes on past a whole piece.
    await write(bad, 0, MiB);
    await write(good, 0, 64 * KiB);
    await write(good, MiB, good.length);
    await part.flush();
    assert.deepEqual(await bytesOf(await replica().partials.read(digest, { start: 0, end: 64 * KiB - 1 })), good.subarray(0, 64 * KiB));
    await committedGood();
  });

  it('lets a repair of a range that continues another connection\'s run win over the old bytes (found in review)', async () => {
    const { good, bad, digest, part, committedGood } = await withPart(2 * MiB, { start: MiB + 1000, end: MiB + 2000 });
    // Two connections: A writes [0, 1 MiB), B writes [1 MiB, 2 MiB) with a flip; A ends where B
    // starts. The piece at 1 MiB is fetched again: its bytes follow A's, but must beat B's.
    await part.write(0, good.subarray(0, MiB / 2));
    await part.write(MiB, bad.subarray(MiB, 2 * MiB));
    await part.write(MiB / 2, good.subarray(MiB / 2, MiB));
    await part.write(MiB, good.subarray(MiB, MiB + 64 * KiB));
    assert.deepEqual(await readAt(part, MiB + 1000, 1000), good.subarray(MiB + 1000, MiB + 2000), 'read in this replica');
    void part.record({ start: 0, end: 2 * MiB - 1 });
    await part.flush();
    assert.deepEqual(await bytesOf(await replica().partials.read(digest, { start: MiB, end: MiB + 64 * KiB - 1 })), good.subarray(MiB, MiB + 64 * KiB), 'read by another replica');
    await committedGood();
  });

  it('keeps another replica\'s reader reading when the piece it was about to read is shadowed and removed', async () => {
    const { good, bad, digest, part } = await withPart(2 * MiB, { start: 0, end: 1000 });
    await fetchRange(part, bad, 0, MiB - 1);
    await part.flush();
    await fetchRange(part, good, MiB, good.length - 1);
    await part.flush();
    // The reader starts on the pieces the bucket lists now...
    const reading = await replica().partials.read(digest, { start: 0, end: MiB - 1 });
    // ...then a repair writes the first MiB again: its piece shadows the first one, which goes.
    await part.resetHeld([{ start: MiB, end: good.length - 1 }]);
    await fetchRange(part, good, 0, MiB - 1);
    await part.flush();
    assert.deepEqual(await bytesOf(reading), good.subarray(0, MiB));
    await part.discard();
  });

  it('serves a growing partial blob to another replica, and the blob once it is committed', async () => {
    const data = randomBytes(6 * MiB);
    const digest = sha256(data);
    const writer = replica();
    const reader = replica();
    const part = await writer.partials.open(digest, data.length);
    await fetchRange(part, data, 0, 2 * MiB - 1);
    await part.flush();
    assert.equal(await reader.partials.has(digest), true);
    assert.deepEqual(await bytesOf(await reader.partials.read(digest, { start: MiB, end: 2 * MiB - 1 })), data.subarray(MiB, 2 * MiB));
    assert.deepEqual(await bytesOf(await writer.partials.read(digest, { start: 0, end: 2 * MiB - 1 })), data.subarray(0, 2 * MiB));
    await fetchRange(part, data, 2 * MiB, data.length - 1);
    await part.commit(digest);
    await part.close();
    assert.equal(await reader.partials.has(digest), false);
    assert.deepEqual(await bytesOf(await reader.partials.read(digest, { start: 5 * MiB, end: data.length - 1 })), data.subarray(5 * MiB));
    await assert.rejects(reader.partials.read(sha256(Buffer.from('nothing')), { start: 0, end: 0 }), /no partial blob and no blob/);
  });

  it('lists, measures, sweeps and discards partial blobs; keeps the transfers\' state', async () => {
    const store = replica();
    const a = randomBytes(MiB);
    const b = randomBytes(2 * MiB);
    const pa = await store.partials.open(sha256(a), a.length);
    await fetchRange(pa, a, 0, a.length - 1);
    await pa.close();
    const pb = await store.partials.open(sha256(b), b.length);
    await fetchRange(pb, b, 0, MiB - 1);
    await pb.flush();
    assert.deepEqual((await collect(store.partials.list())).map((p) => [p.digest, p.bytes]).sort(), [[sha256(a), MiB], [sha256(b), MiB]].sort());
    assert.deepEqual(await replica().partials.usage(), { bytes: 2 * MiB, count: 2 });
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(await store.partials.sweep(500), [sha256(a)], 'the one open here is kept');
    assert.deepEqual(await replica().partials.sweep(500, (d) => d === sha256(b)), []);
    await pb.discard();
    assert.deepEqual(await collect(bucket.list('partials/')), []);
    await store.partials.writeState('links', '{"x":1}');
    assert.equal(await replica().partials.readState('links'), '{"x":1}');
    assert.equal(await store.partials.readState('other'), undefined);
  });
});
