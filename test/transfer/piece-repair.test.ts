/**
 * Issue 12 point 1: a flipped byte costs a piece, never the pull. With piece digests a reader is
 * sent only checked pieces; without them the blob is repaired by two agreeing copies and a reader
 * already sent bad bytes is cut, its retry served from the repaired copy; an upstream serving the
 * same wrong bytes again and again fails with DigestMismatchError (sameBytes).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DigestMismatchError } from '../../lib/transfer/errors.ts';
import { startTransfer, type Transfer } from '../../lib/transfer/transfer.ts';
import { createPrefixReader } from '../../lib/transfer/prefix-reader.ts';
import { repairByAgreement, suspicionOrder, type DamageHint } from '../../lib/transfer/piece-agreement.ts';
import { firstDamage } from '../../lib/transfer/gzip-damage.ts';
import { buildLikeFilesLayer, buildRandomLayer } from '../helpers/oci-image.ts';
import { openStore } from '../../lib/storage/store.ts';
import type { PartialBlob } from '../../lib/storage/partial-blobs.ts';
import type { ByteRange } from '../../lib/oci/range.ts';
import { chunkDigestsOf, makeBlob, sha256 } from './range-server.ts';
import { CHUNK, MiB, TEST_CONFIG, TEST_TIMING, rig, type Rig } from './harness.ts';

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

/** A reader of the whole blob started with the transfer: what it got, or the error that cut it. */
function readAll(t: Transfer): Promise<Buffer | Error> {
  return collect(createPrefixReader(t)).catch((e: unknown) => e as Error);
}

describe('piece repair: a flipped byte costs a piece, never the pull', function () {
  this.timeout(30_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('with piece digests, a reader gets only checked pieces: byte-identical on its first attempt, each flip one piece fetched again', async () => {
    const size = 6 * MiB;
    r = await rig(size, { faults: { corruptPerMiB: 1.5 }, seed: 5, chunkDigests: chunkDigestsOf(Buffer.alloc(0), CHUNK) });
    const digests = chunkDigestsOf(r.data, CHUNK);
    r.source.chunkDigests = async () => digests;
    const t = r.start();
    const reader = readAll(t);
    await t.done;
    const got = await reader;
    assert.ok(Buffer.isBuffer(got), `the reader was cut: ${String(got)}`);
    assert.ok(got.equals(r.data), 'the reader got other bytes than the blob');
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    const s = t.snapshot();
    assert.ok(r.proxy.stats.corruptions >= 2, `only ${r.proxy.stats.corruptions} flips: the test shows nothing`);
    assert.ok(s.chunksRefetched >= 1, 'no piece was fetched again');
    // A bad piece is fetched again whole and alone: nothing else crossed the link twice.
    assert.equal(s.bytesFetched, size + s.chunksRefetched * CHUNK);
  });

  it('a blob fetched in one request gets its bad piece again alone, never the rest of the blob', async () => {
    const size = 1 * MiB;
    r = await rig(size, { faults: { corruptOffsets: [70_000] } });
    const digests = chunkDigestsOf(r.data, CHUNK);
    r.source.chunkDigests = async () => digests;
    // One connection: the one request is never split at the tail (a crowded machine makes even this link crawl).
    const t = r.start({ config: { ...TEST_CONFIG, smallBlobBytes: size, minConnections: 1, maxConnections: 1 } });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    const s = t.snapshot();
    assert.equal(s.chunksRefetched, 1);
    assert.equal(s.bytesFetched, size + CHUNK);
  });

  it('asks the source for piece digests at the transfer\'s own piece size', async () => {
    r = await rig(2 * MiB);
    const digests = chunkDigestsOf(r.data, CHUNK);
    const asked: number[] = [];
    r.source.chunkDigests = async (chunkSize) => {
      asked.push(chunkSize);
      return digests;
    };
    await r.start().done;
    assert.deepEqual(asked, [CHUNK]);
  });

  it('checks pieces smaller than its chunks: a flip costs a piece (transfer.pieceBytes), not the chunk its request asked', async () => {
    const size = 4 * MiB;
    const piece = 64 * 1024;
    r = await rig(size, { faults: { corruptOffsets: [1_500_000] } });
    const digests = chunkDigestsOf(r.data, piece);
    const asked: number[] = [];
    r.source.chunkDigests = async (pieceSize) => {
      asked.push(pieceSize);
      return digests;
    };
    // Requests of 1 MiB, pieces of 64 KiB; one connection, so one flip (at its stream's offset).
    const t = r.start({ config: { ...TEST_CONFIG, minChunkBytes: MiB, maxChunkBytes: MiB, pieceBytes: piece, minConnections: 1, maxConnections: 1 } });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    assert.deepEqual(asked, [piece]);
    const s = t.snapshot();
    assert.equal(r.proxy.stats.corruptions, 1);
    assert.equal(s.chunksRefetched, 1);
    assert.equal(s.bytesFetched, size + piece);
  });

  it('releases nothing before the piece digests come, then only checked pieces', async () => {
    const size = 2 * MiB;
    r = await rig(size, { faults: { corruptOffsets: [5000] } });
    const digests = chunkDigestsOf(r.data, CHUNK);
    let answers = 0;
    // The first answer has none (a relay still fetching the blob): the transfer asks again.
    r.source.chunkDigests = async () => (++answers === 1 ? undefined : digests);
    const t = r.start({ config: { ...TEST_CONFIG, maxConnections: 1, minConnections: 1 } });
    let releasedBeforeList = 0;
    t.on('advance', () => {
      if (answers < 2) releasedBeforeList = Math.max(releasedBeforeList, t.releasedBytes);
    });
    const reader = readAll(t);
    await t.done;
    const got = await reader;
    assert.ok(Buffer.isBuffer(got) && got.equals(r.data), 'the reader did not get the blob');
    assert.equal(releasedBeforeList, 0);
    assert.ok(answers >= 2);
    assert.equal(t.snapshot().chunksRefetched, 1);
  });

  it('on a link slower than repairSeconds per piece, one flipped piece is fetched again, not the fill failed', async () => {
    const size = 1 * MiB;
    // One connection at 512 KiB/s: the first piece (256 KiB) is checked 0.5 s in, past repairSeconds.
    r = await rig(size, { faults: { corruptOffsets: [5000], rateBytesPerSec: 512 * 1024 } });
    const digests = chunkDigestsOf(r.data, CHUNK);
    r.source.chunkDigests = async () => digests;
    const t = r.start({ config: { ...TEST_CONFIG, maxConnections: 1, minConnections: 1, repairSeconds: 0.3 } });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    assert.equal(r.proxy.stats.corruptions, 1);
    assert.equal(t.snapshot().chunksRefetched, 1);
  });

  it('keeps the checked pieces of a fill that failed its repair window, and a later fill resumes from them', async () => {
    const size = 2 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 2 * MiB } });
    const digests = chunkDigestsOf(r.data, CHUNK);
    r.source.chunkDigests = async () => digests;
    const config = { ...TEST_CONFIG, maxConnections: 1, minConnections: 1, repairSeconds: 0.3 };
    const t = r.start({ config });
    // Half the blob arrives intact; then the link corrupts every piece.
    t.on('advance', () => {
      if (t.releasedBytes >= size / 2) r!.proxy.setFaults({ corruptPerMiB: 64 });
    });
    const err = await t.done.then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof DigestMismatchError && !err.sameBytes, String(err));
    r.proxy.setFaults({}, { replace: true });
    const again = r.start({ config });
    await again.done;
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    assert.ok(again.snapshot().resumedBytes >= size / 2, `resumed ${again.snapshot().resumedBytes} bytes: the checked half was thrown away`);
  });

  it('without piece digests (held by default), repairs a flip by two agreeing copies; a reader started with the transfer is never cut and gets the blob', async () => {
    const size = 4 * MiB;
    r = await rig(size, { faults: { corruptOffsets: [100_000] } });
    const t = r.start({ config: { ...TEST_CONFIG, minConnections: 1, maxConnections: 1 } });
    const first = readAll(t);
    let mismatches = 0;
    t.on('mismatch', () => {
      mismatches++;
      r!.proxy.setFaults({ rateBytesPerSec: 1 * MiB }, { replace: true });
    });
    await t.done;
    const got = await first;
    assert.equal(mismatches, 1, 'the blob did not fail its digest once: the test shows nothing');
    assert.ok(Buffer.isBuffer(got) && got.equals(r.data), `the reader did not get the blob: ${String(got)}`);
    assert.equal(t.snapshot().chunksRefetched, 1, 'one piece replaced');
  });

  it('without piece digests, streaming unverified bytes, repairs a flip by two agreeing copies; a reader sent bad bytes is cut and its retry gets the blob', async () => {
    const size = 4 * MiB;
    r = await rig(size, { faults: { corruptOffsets: [100_000] } });
    // One connection: one flip, in the first piece.
    const t = r.start({ config: { ...TEST_CONFIG, minConnections: 1, maxConnections: 1, holdUnverified: false } });
    const first = readAll(t);
    let retry: Promise<Buffer | Error> | undefined;
    let flips = 0;
    t.on('mismatch', () => {
      // One flip per connection used (at the same offset of each one's stream).
      flips = r!.proxy.stats.corruptions;
      // A link of capped connections, as the real one: the repair stops once the blob verifies.
      r!.proxy.setFaults({ rateBytesPerSec: 1 * MiB }, { replace: true });
      retry = readAll(t);
    });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    assert.ok((await first) instanceof Error, 'the reader that was sent a flipped byte was not cut');
    assert.ok(retry, 'no mismatch');
    const again = await retry;
    assert.ok(Buffer.isBuffer(again) && again.equals(r.data), `the retry did not get the blob: ${String(again)}`);
    const s = t.snapshot();
    assert.equal(flips, 1);
    assert.equal(s.chunksRefetched, 1, 'one piece replaced');
    // The first piece fetched again differs from the held one; with it the blob verifies, and
    // the other pieces are not fetched again.
    assert.ok(s.bytesFetched <= size + 2 * CHUNK, `fetched ${s.bytesFetched} bytes for a ${size} byte blob: more than the bad piece was fetched again`);
  });

  it('without piece digests, a flip late in a gzip layer costs the pieces where the layer shows damage, not every piece before it', async () => {
    const layer = await readFile((await buildLikeFilesLayer('piece-repair-gzip', 16 * MiB)).path);
    const size = layer.length;
    const piece = 64 * 1024;
    const flipAt = Math.floor(size * 0.85);
    r = await rig(size, { data: layer, faults: { corruptOffsets: [flipAt] }, seed: 3 });
    // One request from the start (one connection): the flip lands at flipAt of the blob.
    const t = r.start({ config: { ...TEST_CONFIG, smallBlobBytes: size, pieceBytes: piece, minConnections: 1, maxConnections: 4 } });
    let held: Buffer | undefined;
    let fetchedBefore = 0;
    t.on('mismatch', () => {
      fetchedBefore = t.snapshot().bytesFetched;
      r!.proxy.setFaults({ rateBytesPerSec: 4 * MiB }, { replace: true });
      // The blob as fetched, before the repair changed a byte of it.
      held = readFileSync(r!.partPath);
    });
    await t.done;
    assert.ok(held, 'no mismatch');
    const bytes = held;
    const placed = await firstDamage({ read: async (pos, into) => bytes.copy(into, 0, pos, Math.min(bytes.length, pos + into.length)) }, size);
    assert.ok((await readFile(r.blobPath)).equals(layer));
    assert.equal(r.proxy.stats.corruptions, 1);
    assert.ok(placed !== undefined && placed > flipAt, `the flip at ${flipAt} was placed at ${placed}: the test shows nothing`);
    // What the repair fetched (the fetch before it may have copied a little at its tail).
    const again = t.snapshot().bytesFetched - fetchedBefore;
    // The pieces from where the damage showed back to the flip, and as many in flight beside them
    // (one more at a time for each that agreed), and one.
    const most = (2 * (Math.floor((placed - 1) / piece) - Math.floor(flipAt / piece) + 1) + 1) * piece;
    assert.ok(again <= most, `${again} bytes fetched again (at most ${most}); ${Math.floor(flipAt / piece)} pieces precede the flip`);
  });

  for (const hold of [true, false]) {
  it(hold
    ? 'without piece digests, knows where a flipped gzip layer shows damage at the mismatch (watched as it was hashed): the repair reads nothing of the layer from its start again'
    : 'streaming unverified bytes (a relay: its readers check pieces), watches nothing as it hashes (no inflater per transfer): the repair inflates the layer from its start', async () => {
    const layer = await readFile((await buildLikeFilesLayer('piece-repair-gzip', 16 * MiB)).path);
    const size = layer.length;
    const flipAt = Math.floor(size * 0.85);
    r = await rig(size, { data: layer, faults: { corruptOffsets: [flipAt] }, seed: 3 });
    let mismatched = false;
    let copying = false;
    let readBack = 0;
    const store = r.store.partials;
    const partials = Object.create(store) as typeof store;
    partials.open = async (digest, n) => {
      const part = await store.open(digest, n);
      const watched = Object.create(part) as PartialBlob;
      watched.read = (pos, into) => {
        if (mismatched && !copying && pos === 0) readBack += into.length;
        return part.read(pos, into);
      };
      watched.scratch = async () => {
        const scratch = await part.scratch();
        const copies = Object.create(scratch) as typeof scratch;
        copies.write = (pos, buf) => {
          copying = true;
          return scratch.write(pos, buf);
        };
        return copies;
      };
      return watched;
    };
    const t = r.start({ partials, config: { ...TEST_CONFIG, smallBlobBytes: size, pieceBytes: 64 * 1024, minConnections: 1, maxConnections: 4, holdUnverified: hold } });
    t.on('mismatch', () => {
      mismatched = true;
      r!.proxy.setFaults({ rateBytesPerSec: 4 * MiB }, { replace: true });
    });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(layer));
    assert.ok(mismatched && copying, 'no repair');
    // The watch goes on from where it was at the mismatch; a locate inflating the layer again reads it from its start.
    if (hold) assert.equal(readBack, 0, `${readBack} bytes of the part read back from its start before the first copy came`);
    else assert.ok(readBack > 0, 'a relay\'s transfer watched its layer as it hashed it');
  });
  }

  it('without piece digests, a flip in a layer of stored (random) bytes costs the few pieces its gzip CRC names, not every piece before it', async () => {
    const layer = await readFile((await buildRandomLayer('piece-repair-random', 8 * MiB)).path);
    const size = layer.length;
    const piece = 64 * 1024;
    const flipAt = Math.floor(size * 0.85);
    r = await rig(size, { data: layer, faults: { corruptOffsets: [flipAt] }, seed: 3 });
    const t = r.start({ config: { ...TEST_CONFIG, smallBlobBytes: size, pieceBytes: piece, minConnections: 1, maxConnections: 4 } });
    let fetchedBefore = 0;
    t.on('mismatch', () => {
      fetchedBefore = t.snapshot().bytesFetched;
      r!.proxy.setFaults({ rateBytesPerSec: 4 * MiB }, { replace: true });
    });
    await t.done;
    assert.ok((await readFile(r.blobPath)).equals(layer));
    assert.equal(r.proxy.stats.corruptions, 1);
    // The real place, a few by chance in 8 MiB, and the trailer's piece: at most 4 at once, then
    // what started once they agreed, at most as many again.
    const again = t.snapshot().bytesFetched - fetchedBefore;
    assert.ok(again <= 8 * piece, `${again} bytes fetched again; ${Math.floor(flipAt / piece)} pieces precede the flip`);
  });

  it('repairs a blob fetched in one request (several pieces, no piece digests) by ranges of its pieces', async () => {
    const size = 1 * MiB;
    r = await rig(size, { faults: { corruptOffsets: [300_000] } });
    const t = r.start({ config: { ...TEST_CONFIG, smallBlobBytes: size, minConnections: 1, maxConnections: 1 } });
    t.on('mismatch', () => r!.proxy.clearFaults());
    await t.done;
    assert.equal(t.mode, 'single');
    assert.ok((await readFile(r.blobPath)).equals(r.data));
    assert.equal(t.snapshot().chunksRefetched, 1);
  });

  for (const withDigests of [false, true]) {
    it(`fails with DigestMismatchError (sameBytes) when the upstream serves the same wrong bytes again and again (${withDigests ? 'with' : 'without'} piece digests)`, async () => {
      const size = 2 * MiB;
      r = await rig(size);
      // What the descriptor says differs from what the upstream serves, in one byte.
      const wanted = Buffer.from(r.data);
      wanted[CHUNK + 7] = (wanted[CHUNK + 7] as number) ^ 0x20;
      if (withDigests) {
        const digests = chunkDigestsOf(wanted, CHUNK);
        r.source.chunkDigests = async () => digests;
      }
      const t = startTransfer({ digest: sha256(wanted), size, source: r.source, partials: r.store.partials, config: TEST_CONFIG, ...TEST_TIMING });
      const err = await t.done.then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof DigestMismatchError, String(err));
      assert.equal(err.sameBytes, true);
      assert.match(err.message, /same wrong bytes/);
      assert.ok(t.snapshot().bytesFetched <= 3 * size, 'it kept fetching');
    });
  }
});

describe('piece repair by agreement (no piece digests)', () => {
  const PIECE = 4 * 1024;
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  /** A partial blob of `count` seeded pieces of 4 KiB, held with a flipped byte in each piece of `flipped`; removed after the test. */
  async function heldBlob(count: number, seed: number, flipped: number[], digest?: string): Promise<{ data: Buffer; part: PartialBlob; pieces: ByteRange[] }> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-agreement-'));
    const data = makeBlob(count * PIECE, seed);
    const part = await (await openStore(dir)).partials.open(digest ?? sha256(data), data.length);
    cleanups.push(async () => {
      await part.close();
      await rm(dir, { recursive: true, force: true });
    });
    const held = Buffer.from(data);
    for (const i of flipped) held[i * PIECE + 100] = (held[i * PIECE + 100] as number) ^ 0x01;
    await part.write(0, held);
    const pieces = Array.from({ length: count }, (_, i) => ({ start: i * PIECE, end: (i + 1) * PIECE - 1 }));
    return { data, part, pieces };
  }

  async function assertHolds(part: PartialBlob, data: Buffer): Promise<void> {
    const buf = Buffer.alloc(data.length);
    assert.equal(await part.read(0, buf), data.length);
    assert.ok(buf.equals(data), 'the part was not repaired');
  }

  it('orders the pieces from where the damage showed back to the first, then the rest; in order without a place', () => {
    const pieces = Array.from({ length: 5 }, (_, i) => ({ start: i * 10, end: i * 10 + 9 }));
    const cases: Array<[number | undefined, number[]]> = [
      [undefined, [0, 1, 2, 3, 4]],
      [0, [0, 1, 2, 3, 4]],
      [1, [0, 1, 2, 3, 4]],
      [30, [2, 1, 0, 3, 4]],
      [31, [3, 2, 1, 0, 4]],
      [50, [4, 3, 2, 1, 0]],
      [999, [4, 3, 2, 1, 0]],
    ];
    for (const [at, order] of cases) assert.deepEqual(suspicionOrder(pieces, at === undefined ? undefined : { before: at }), order, `damage shown by ${at}`);
  });

  it('compares at most `concurrency` pieces at once, however many the blob has', async () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    const { data, part, pieces } = await heldBlob(64, 3, [], digest);
    let running = 0;
    let most = 0;
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest,
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 4,
      fetchCopy: async (p, write) => {
        most = Math.max(most, ++running);
        await new Promise((resolve) => setImmediate(resolve));
        await write(p.start, data.subarray(p.start, p.end + 1));
        running--;
      },
    });
    // Every copy agrees with what is held: the upstream serves these bytes.
    assert.equal(outcome, 'same');
    assert.equal(most, 4);
  });

  it('fetches a copy cut by the link again instead of failing the repair (a reset or a garbled header failed the transfer)', async () => {
    const { data, part, pieces } = await heldBlob(8, 5, [1]);
    let cuts = 0;
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 4,
      fetchCopy: async (p, write) => {
        if (p.start === PIECE && cuts++ < 2) {
          await write(p.start, data.subarray(p.start, p.start + 100));
          throw Object.assign(new Error('other side closed'), { code: cuts === 1 ? 'ECONNRESET' : 'UND_ERR_SOCKET' });
        }
        await write(p.start, data.subarray(p.start, p.end + 1));
      },
    });
    assert.equal(outcome, 'repaired');
    // Two copies cut, then a whole one: it differs from the held one, and with it the blob verifies.
    assert.equal(cuts, 3, 'the cut piece was fetched until a copy came whole');
    await assertHolds(part, data);
  });

  it('takes a locate that fails (a store read) for no hint: the pieces are compared in order and the blob is repaired', async () => {
    const { data, part, pieces } = await heldBlob(8, 7, [5]);
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 4,
      locate: () => Promise.reject(new Error('S3 GET failed')),
      fetchCopy: async (p, write) => write(p.start, data.subarray(p.start, p.end + 1)),
    });
    assert.equal(outcome, 'repaired');
    await assertHolds(part, data);
  });

  it('leaves no copy fetching once the repair failed (its whole-blob check could not read the part)', async () => {
    const { data, part, pieces } = await heldBlob(16, 8, [0, 12]);
    // Once the first copy came, the part's reads fail (after 100 ms): the check after piece 0
    // changed rejects while the repair waits on it and pieces 2 and 3 are in flight (piece 1 agreed at once).
    let broken = false;
    const unreadable = new Proxy(part, {
      get(target, prop, receiver) {
        if (prop === 'read' && broken) return () => new Promise((_, reject) => setTimeout(() => reject(new Error('disk read failed')), 100));
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    let active = 0;
    await assert.rejects(repairByAgreement({
      part: unreadable, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 4,
      fetchCopy: async (p, write, signal) => {
        active++;
        try {
          if (p.start > PIECE) await new Promise((resolve, reject) => {
            const timer = setTimeout(resolve, 1000);
            signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason as Error); }, { once: true });
          });
          await write(p.start, data.subarray(p.start, p.end + 1));
          broken = true;
        } finally {
          active--;
        }
      },
    }), /disk read failed/);
    assert.equal(active, 0, `${active} piece copies still fetching after the repair failed`);
  });

  it('starts no piece while the whole blob is checked after a piece changed (on a large blob that check takes a while)', async () => {
    // Flips in pieces 2 and 40: the check after piece 2 fails.
    const { data, part, pieces } = await heldBlob(64, 6, [2, 40]);
    let checking = false;
    let startedWhileChecking = 0;
    // Reads of the whole blob (the check) take 300 ms; a piece's own reads are quick.
    const slowWhole = Object.create(part) as PartialBlob;
    slowWhole.read = async (pos, into) => {
      if (into.length <= PIECE) return part.read(pos, into);
      checking = true;
      await new Promise((resolve) => setTimeout(resolve, 300));
      checking = false;
      return part.read(pos, into);
    };
    const outcome = await repairByAgreement({
      part: slowWhole, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 30_000, signal: new AbortController().signal, concurrency: 8,
      fetchCopy: async (p, write, signal) => {
        if (checking) startedWhileChecking++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        signal.throwIfAborted();
        await write(p.start, data.subarray(p.start, p.end + 1));
      },
    });
    assert.equal(outcome, 'repaired');
    await assertHolds(part, data);
    assert.equal(startedWhileChecking, 0, `${startedWhileChecking} pieces started while the whole blob was checked`);
  });

  it('fetches the pieces up to the differing one and an eighth of the blob in flight, not every piece at once', async () => {
    const count = 64;
    const { data, part, pieces } = await heldBlob(count, 4, [2]);
    let started = 0;
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 32,
      fetchCopy: async (p, write, signal) => {
        started++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        signal.throwIfAborted();
        await write(p.start, data.subarray(p.start, p.end + 1));
      },
    });
    assert.equal(outcome, 'repaired');
    await assertHolds(part, data);
    // The flip is in piece 2: pieces 0-2, what was in flight beside them (count/8 at most) and
    // what started in their place while the whole blob was hashed (as many).
    assert.ok(started <= 3 + 2 * (count / 8), `${started} of ${count} pieces were fetched again`);
  });

  /** A locate that says where the part first differs from `data` (as gzip-damage.ts would, from the bytes): before the end of that piece. */
  function differsBy(part: PartialBlob, data: Buffer, pieces: ByteRange[]): () => Promise<{ before: number } | undefined> {
    return async () => {
      const buf = Buffer.alloc(data.length);
      await part.read(0, buf);
      const i = pieces.findIndex((p) => !buf.subarray(p.start, p.end + 1).equals(data.subarray(p.start, p.end + 1)));
      return i < 0 ? undefined : { before: (pieces[i] as ByteRange).end + 1 };
    };
  }

  /** Repairs a held blob of 64 pieces flipped in piece 40, `locate` saying what it says: the pieces fetched, and how many at most at once. */
  async function repairWithHint(seed: number, hint: DamageHint): Promise<{ fetched: number[]; most: number }> {
    const { data, part, pieces } = await heldBlob(64, seed, [40]);
    const fetched: number[] = [];
    let running = 0;
    let most = 0;
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 32,
      locate: async () => hint,
      fetchCopy: async (p, write, signal) => {
        fetched.push(p.start / PIECE);
        most = Math.max(most, ++running);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running--;
        signal.throwIfAborted();
        await write(p.start, data.subarray(p.start, p.end + 1));
      },
    });
    assert.equal(outcome, 'repaired');
    await assertHolds(part, data);
    return { fetched: [...new Set(fetched)].sort((a, b) => a - b), most };
  }

  it('compares the suspects first (a gzip CRC\'s few places), all at once, and nothing else when one of them was it', async () => {
    const { fetched, most } = await repairWithHint(7, { suspects: [{ start: 5 * PIECE + 10, end: 5 * PIECE + 99 }, { start: 40 * PIECE + 50, end: 40 * PIECE + 200 }] });
    assert.deepEqual(fetched, [5, 40], `fetched pieces ${fetched.join(',')}`);
    assert.equal(most, 2, 'the two suspects were not fetched at once');
  });

  it('fetches every piece between where the damage must start and where it showed at once (a gzip layer\'s last good tar header and its first bad one)', async () => {
    const { fetched, most } = await repairWithHint(8, { after: 40 * PIECE + 5, before: 41 * PIECE + 10 });
    assert.deepEqual(fetched, [40, 41], `fetched pieces ${fetched.join(',')}`);
    assert.equal(most, 2, 'pieces 41 and 40 were fetched one after the other');
  });

  it('looks for the next flip as soon as a piece changed, while a third copy confirms that piece (a layer with several flips: a round trip each, not two)', async () => {
    const { data, part, pieces } = await heldBlob(64, 9, [10, 30]);
    const copies = new Map<number, number>();
    const starts: Array<{ piece: number; copy: number; at: number }> = [];
    const ends: Array<{ piece: number; copy: number; at: number }> = [];
    const outcome = await repairByAgreement({
      part, size: data.length, pieces, algorithm: 'sha256', digest: sha256(data),
      deadline: performance.now() + 10_000, signal: new AbortController().signal, concurrency: 32,
      locate: differsBy(part, data, pieces),
      fetchCopy: async (p, write, signal) => {
        const piece = p.start / PIECE;
        const copy = (copies.get(piece) ?? 0) + 1;
        copies.set(piece, copy);
        starts.push({ piece, copy, at: performance.now() });
        // A piece's copies after its first come slowly (the link is busy with other blobs).
        await new Promise((resolve) => setTimeout(resolve, copy === 1 ? 20 : 300));
        signal.throwIfAborted();
        await write(p.start, data.subarray(p.start, p.end + 1));
        ends.push({ piece, copy, at: performance.now() });
      },
    });
    assert.equal(outcome, 'repaired');
    await assertHolds(part, data);
    const thirtyStarted = starts.find((s) => s.piece === 30)?.at;
    const tenConfirmed = ends.find((e) => e.piece === 10 && e.copy === 2)?.at ?? Infinity;
    assert.ok(thirtyStarted !== undefined && thirtyStarted < tenConfirmed, `piece 30 was fetched only once piece 10's second copy came (${JSON.stringify({ starts, ends })})`);
  });
});
