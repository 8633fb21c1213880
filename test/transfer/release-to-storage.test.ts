/**
 * Transfer -> PartialBlob.release: what the transfer's readers may have is told to the storage too,
 * so a cluster publishes it for other replicas' readers (lib/cluster/cluster-partials.ts). Those
 * serve nothing past it: without piece digests nothing before the blob verified.
 */
import assert from 'node:assert/strict';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';
import type { Transfer } from '../../lib/transfer/transfer.ts';
import { CHUNK, MiB, rig, type Rig } from './harness.ts';
import { chunkDigestsOf } from './range-server.ts';

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

describe('a transfer tells its partial blob what its readers may have (PartialBlob.release)', function () {
  this.timeout(20_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

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
