import assert from 'node:assert/strict';
import { Writable, type Readable } from 'node:stream';
import { slabPool } from '../../lib/storage/buffer-pool.ts';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';
import type { BlobStream } from '../../lib/storage/storage.ts';
import { createPrefixReader } from '../../lib/transfer/prefix-reader.ts';
import type { Transfer } from '../../lib/transfer/transfer.ts';
import { CHUNK, KiB, MiB, TEST_CONFIG, rig, type Rig } from './harness.ts';
import { chunkDigestsOf } from './range-server.ts';

async function collect(stream: Readable, onData?: () => void): Promise<{ data: Buffer; error?: Error }> {
  const parts: Buffer[] = [];
  try {
    for await (const b of stream) {
      parts.push(b as Buffer);
      onData?.();
    }
    return { data: Buffer.concat(parts) };
  } catch (e) {
    return { data: Buffer.concat(parts), error: e as Error };
  }
}

/**
 * A sink like a socket that is slow to take bytes: it copies each chunk only when it calls the
 * write back, a while after the write, so a slab given back to the pool and read into before
 * then shows up as wrong bytes.
 */
class SlowSink extends Writable {
  readonly parts: Buffer[] = [];
  constructor(private readonly onData?: () => void) {
    super({ highWaterMark: 64 * KiB });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    setTimeout(() => {
      this.parts.push(Buffer.from(chunk));
      this.onData?.();
      cb();
    }, 1);
  }

  get data(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Watches slabPool while `run` runs: slabs taken, how many distinct buffers they were, and how many are still out. */
async function watchingSlabs<T>(run: () => Promise<T>): Promise<{ result: T; taken: number; distinct: number; out: number }> {
  const acquire = slabPool.acquire.bind(slabPool);
  const release = slabPool.release.bind(slabPool);
  const distinct = new Set<Buffer>();
  let taken = 0;
  let out = 0;
  slabPool.acquire = () => {
    const b = acquire();
    taken++;
    out++;
    distinct.add(b);
    return b;
  };
  slabPool.release = (b: Buffer) => {
    out--;
    release(b);
  };
  try {
    const result = await run();
    return { result, taken, distinct: distinct.size, out };
  } finally {
    slabPool.acquire = acquire;
    slabPool.release = release;
  }
}

/** writeTo's outcome: 'done' or its error. */
async function sendTo(stream: BlobStream, sink: Writable): Promise<'done' | Error> {
  assert.ok(stream.writeTo, 'the prefix reader offers writeTo (the fs store reads positionally)');
  return stream.writeTo(sink).then(() => 'done' as const, (e: unknown) => e as Error);
}

/** The rig's partial blobs, each telling `seen` what the transfer released, with the transfer's state then. */
function recordingReleases(inner: PartialBlobStorage, seen: Array<{ bytes: number; running: boolean }>, transfer: () => Transfer | undefined): PartialBlobStorage {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'open') return Reflect.get(target, prop, receiver) as unknown;
      return async (digest: string, size: number): Promise<PartialBlob> => {
        const blob = await target.open(digest, size);
        return new Proxy(blob, {
          get(b, p, r) {
            if (p === 'release') return (bytes: number) => seen.push({ bytes, running: transfer()?.state === 'running' });
            const v = Reflect.get(b, p, r) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(b) : v;
          },
        });
      };
    },
  });
}

describe('prefix reader', function () {
  this.timeout(20_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  /** Bytes of a source without piece digests stream before the blob verified (a relay's transfers). */
  const STREAM_UNVERIFIED = { config: { ...TEST_CONFIG, holdUnverified: false } };

  it('streams the right bytes while the transfer is still downloading', async () => {
    r = await rig(4 * MiB, { faults: { rateBytesPerSec: 1 * MiB } });
    const t = r.start(STREAM_UNVERIFIED);
    let beforeVerified = 0;
    const got = await collect(createPrefixReader(t), () => { if (t.state === 'running') beforeVerified++; });
    await t.done;
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(r.data));
    assert.ok(beforeVerified > 10, `only ${beforeVerified} reads happened before verification`);
  });

  describe('writeTo: through pooled slabs', () => {
    it('sends the right bytes while the transfer is still downloading, reusing a few slabs that go back only once the sink took them', async () => {
      r = await rig(8 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
      const t = r.start(STREAM_UNVERIFIED);
      let beforeVerified = 0;
      const sink = new SlowSink(() => { if (t.state === 'running') beforeVerified++; });
      let ended = false;
      sink.on('finish', () => { ended = true; });
      const watched = await watchingSlabs(() => sendTo(createPrefixReader(t, 100, 8 * MiB - 1), sink));
      await t.done;
      assert.equal(watched.result, 'done');
      assert.ok(ended, 'the sink was not ended');
      assert.ok(sink.data.equals(r.data.subarray(100)), `got ${sink.data.length} bytes, not the blob's from byte 100`);
      assert.ok(beforeVerified > 10, `only ${beforeVerified} writes happened before verification`);
      // 8 MiB in 256 KiB slabs is 32 at least: a fresh buffer per read would be as many distinct ones.
      assert.ok(watched.taken >= 32, `took ${watched.taken} slabs`);
      assert.ok(watched.distinct <= 8, `${watched.distinct} distinct slabs for ${watched.taken} taken: not reused`);
      assert.equal(watched.out, 0, 'slabs not given back');
    });

    it('sends a range from the middle once the partial blob was committed, and several readers at once each get their own bytes', async () => {
      r = await rig(3 * MiB, { faults: { rateBytesPerSec: 4 * MiB } });
      const t = r.start();
      const ranges = [[0, 3 * MiB - 1], [5, 17], [MiB - 3, 2 * MiB + 7], [3 * MiB - 1, 3 * MiB - 1]] as const;
      const sinks = ranges.map(() => new SlowSink());
      const results = await Promise.all(ranges.map(([s, e], i) => sendTo(createPrefixReader(t, s, e), sinks[i] as SlowSink)));
      assert.deepEqual(results, ranges.map(() => 'done'));
      ranges.forEach(([s, e], i) => assert.ok((sinks[i] as SlowSink).data.equals(r!.data.subarray(s, e + 1)), `range ${s}-${e}`));
      await t.done;
      assert.equal(await r.store.partials.has(r.digest), false, 'the part became the blob');
      const late = new SlowSink();
      assert.equal(await sendTo(createPrefixReader(t, MiB + 1), late), 'done');
      assert.ok(late.data.equals(r.data.subarray(MiB + 1)));
    });

    it('stops without ending the sink when it closes mid-body, and leaves no listener on the transfer', async () => {
      r = await rig(8 * MiB, { faults: { rateBytesPerSec: 1 * MiB } });
      const t = r.start(STREAM_UNVERIFIED);
      let ended = false;
      const sink: Writable = new SlowSink(() => { if (!sink.destroyed) sink.destroy(); });
      sink.on('finish', () => { ended = true; });
      const reader = createPrefixReader(t);
      const watched = await watchingSlabs(() => sendTo(reader, sink));
      assert.equal(watched.result, 'done');
      assert.equal(ended, false, 'a cut sink was ended');
      assert.ok(reader.destroyed, 'the reader stays open');
      assert.ok(watched.taken < 16, `went on reading: ${watched.taken} slabs`);
      assert.deepEqual(['advance', 'reset', 'failed'].map((e) => t.listenerCount(e)), [0, 0, 0]);
      t.abort();
      await t.done.catch(() => {});
    });

    it('settles at once for a sink closed before it began (a client gone while its blob was getting ready), waiting for nothing', async () => {
      // Held until the digest matched (the default without piece digests): ~4 s of waiting otherwise.
      r = await rig(4 * MiB, { faults: { rateBytesPerSec: 1 * MiB } });
      const t = r.start();
      const sink = new SlowSink();
      sink.destroy();
      await new Promise((res) => setImmediate(res));
      const reader = createPrefixReader(t);
      const began = Date.now();
      const got = await sendTo(reader, sink);
      const waited = Date.now() - began;
      assert.equal(got, 'done');
      assert.equal(t.state, 'running', 'it waited for the transfer');
      assert.ok(waited < 1000, `waited ${waited} ms for a sink already closed`);
      assert.ok(reader.destroyed, 'the reader stays open');
      assert.deepEqual(['advance', 'reset', 'failed'].map((e) => t.listenerCount(e)), [0, 0, 0]);
      t.abort();
      await t.done.catch(() => {});
    });

    it('rejects instead of completing when the transfer turns out corrupted', async () => {
      r = await rig(2 * MiB, { faults: { corruptPerMiB: 64 } });
      const t = r.start({ config: { ...TEST_CONFIG, repairSeconds: 1 } });
      const sink = new SlowSink();
      const got = await sendTo(createPrefixReader(t), sink);
      await assert.rejects(t.done);
      assert.ok(got instanceof Error, 'writeTo resolved');
      assert.ok(sink.data.length < r.data.length, 'the sink got a complete (corrupt) blob');
    });
  });

  it('streams a range deep in a blob still filling as soon as its bytes are in, fetched before the bytes ahead of it (a relay a mirror asks ranges of)', async () => {
    // 32 chunks of 256 KiB over 2 connections of 1 MiB/s: lowest first, byte 7 MiB would come after ~3.5 s.
    r = await rig(8 * MiB, { faults: { rateBytesPerSec: 1 * MiB } });
    const t = r.start(STREAM_UNVERIFIED);
    let prefixAtFirstByte: number | undefined;
    const deep = await collect(createPrefixReader(t, 7 * MiB, 7 * MiB + 100 * KiB - 1), () => { prefixAtFirstByte ??= t.contiguousBytes; });
    assert.equal(deep.error, undefined);
    assert.ok(deep.data.equals(r.data.subarray(7 * MiB, 7 * MiB + 100 * KiB)));
    assert.ok(prefixAtFirstByte !== undefined && prefixAtFirstByte < 4 * MiB, `the range's first byte went out with ${prefixAtFirstByte} bytes of the prefix in, not long before byte 7 MiB`);
    await t.done;
  });

  it('serves many readers of one transfer at once without a listener-leak warning, and leaves no listener behind', async () => {
    r = await rig(2 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
    const t = r.start();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.name); };
    process.on('warning', onWarning);
    try {
      const readers = Array.from({ length: 24 }, (_, i) => collect(createPrefixReader(t, i * 64 * KiB, 2 * MiB - 1)));
      const got = await Promise.all(readers);
      got.forEach((g, i) => assert.ok(g.data.equals(r!.data.subarray(i * 64 * KiB)), `reader ${i}`));
      await t.done;
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings, []);
    assert.deepEqual(['advance', 'reset', 'failed', 'verified'].map((e) => t.listenerCount(e)), [0, 0, 0, 0]);
  });

  it('streams a range from the middle, and keeps reading after the partial blob is committed into the store', async () => {
    r = await rig(2 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
    const t = r.start();
    const middle = await collect(createPrefixReader(t, 300 * KiB, 1 * MiB + 5));
    assert.ok(middle.data.equals(r.data.subarray(300 * KiB, 1 * MiB + 6)));
    await t.done;
    assert.equal(await r.store.partials.has(r.digest), false, 'the part became the blob');
    const late = await collect(createPrefixReader(t, 2 * MiB - 10));
    assert.ok(late.data.equals(r.data.subarray(2 * MiB - 10)));
  });

  it('errors rather than waiting forever when the committed blob left the store', async () => {
    r = await rig(100 * KiB);
    const t = r.start();
    await t.done;
    assert.equal(await r.store.blobs.delete(r.digest), true);
    const got = await collect(createPrefixReader(t));
    assert.match(String(got.error?.message), /ENOENT/);
  });

  it('errors instead of completing when the transfer turns out corrupted', async () => {
    // Some 16 flips per piece: no two copies of a piece agree before the repair deadline.
    r = await rig(2 * MiB, { faults: { corruptPerMiB: 64 } });
    const t = r.start({ config: { ...TEST_CONFIG, repairSeconds: 1 } });
    const got = await collect(createPrefixReader(t));
    await assert.rejects(t.done);
    assert.ok(got.error, 'the reader ended without an error');
    assert.ok(got.data.length < r.data.length, 'the reader delivered a complete (corrupt) blob');
  });

  it('sends no byte of a source without piece digests before the blob verified (the default), then all of it', async () => {
    r = await rig(2 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
    const t = r.start();
    let beforeVerified = 0;
    let released = 0;
    // Until the digest matched, releasedBytes is below the size.
    t.on('advance', () => { if (t.releasedBytes < t.size) released = Math.max(released, t.releasedBytes); });
    const got = await collect(createPrefixReader(t), () => { if (t.state === 'running') beforeVerified++; });
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(r.data));
    assert.equal(beforeVerified, 0, `${beforeVerified} reads happened before verification`);
    assert.equal(released, 0, `${released} bytes were released before the digest matched`);
  });

  it('holds unverified bytes when the config does not say (a caller that forgets holdUnverified fails closed)', async () => {
    r = await rig(2 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
    const t = r.start({ config: { ...TEST_CONFIG, holdUnverified: undefined } });
    let beforeVerified = 0;
    const got = await collect(createPrefixReader(t), () => { if (t.state === 'running') beforeVerified++; });
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(r.data));
    assert.equal(beforeVerified, 0, `${beforeVerified} reads happened before verification`);
  });

  it('holds back the last byte until the digest matched', async () => {
    r = await rig(1 * MiB, { faults: { rateBytesPerSec: 4 * MiB } });
    const t = r.start(STREAM_UNVERIFIED);
    const seen: Array<[number, boolean]> = [];
    t.on('advance', () => seen.push([t.releasedBytes, t.contiguousBytes === t.size]));
    await t.done;
    const beforeMatch = seen.filter(([released]) => released < t.size);
    assert.ok(beforeMatch.length > 0);
    assert.ok(seen.some(([released, whole]) => whole && released === t.size - 1), 'the whole prefix was hashed but not held back');
    assert.equal(t.releasedBytes, t.size);
  });

  /**
   * Transfer -> PartialBlob.release: what the transfer's readers may have is told to the storage too,
   * so a cluster publishes it for other replicas' readers (lib/cluster/cluster-partials.ts). Those
   * serve nothing past it: without piece digests nothing before the blob verified.
   */
  describe('what readers may have, told to the partial blob (PartialBlob.release)', () => {
    it('without piece digests: nothing before the blob verified', async () => {
      r = await rig(2 * MiB, { faults: { rateBytesPerSec: 4 * MiB } });
      const seen: Array<{ bytes: number; running: boolean }> = [];
      const t: Transfer = r.start({ partials: recordingReleases(r.store.partials, seen, () => t) });
      await t.done;
      assert.ok(seen.length > 0, 'the storage was told nothing');
      assert.deepEqual(seen.filter((s) => s.running && s.bytes > 0), [], 'bytes released before the digest matched');
    });

    it('with piece digests: the checked pieces as they come, before the blob verified', async () => {
      r = await rig(2 * MiB, { faults: { rateBytesPerSec: 2 * MiB } });
      const digests = chunkDigestsOf(r.data, CHUNK);
      r.source.chunkDigests = async () => digests;
      const seen: Array<{ bytes: number; running: boolean }> = [];
      const t: Transfer = r.start({ partials: recordingReleases(r.store.partials, seen, () => t) });
      await t.done;
      const early = seen.filter((s) => s.running && s.bytes > 0);
      assert.ok(early.length >= 2, `released while running: ${JSON.stringify(early)}`);
      assert.ok(early.every((s) => s.bytes < 2 * MiB), 'the last byte waits for the digest');
    });
  });
});
