import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';
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
