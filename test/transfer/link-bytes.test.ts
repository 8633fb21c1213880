import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinkBudget } from '../../lib/transfer/link-budget.ts';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';
import { openStore } from '../../lib/storage/store.ts';
import type { RangeSource } from '../../lib/transfer/range-source.ts';
import type { Transfer } from '../../lib/transfer/transfer.ts';
import { MiB, TEST_CONFIG, TEST_TIMING, rig, starve, type Rig } from './harness.ts';

/** The store's partial blobs, whose writes wait while `held` says so (an object store slow to take a write-out). */
function slowWrites(inner: PartialBlobStorage, held: (pos: number) => Promise<void> | undefined): PartialBlobStorage {
  return Object.assign(Object.create(inner) as PartialBlobStorage, {
    async open(digest: string, size: number): Promise<PartialBlob> {
      const blob = await inner.open(digest, size);
      return Object.assign(Object.create(blob) as PartialBlob, {
        async write(pos: number, bytes: Uint8Array): Promise<void> {
          await held(pos);
          return blob.write(pos, bytes);
        },
      });
    },
  });
}

/** No attempt failed (none cut), and beyond the blob only what the tail's copies may cost (twice TAIL_LOSS_MIN_BYTES, as link-faults allows). */
async function nothingCutNothingTwice(r: Rig, t: Transfer): Promise<void> {
  await r.proxy.close();
  const size = r.data.length;
  const ratio = r.proxy.stats.bytesFromUpstream / size;
  console.log(`      link bytes ${ratio.toFixed(3)}x the blob, ${t.snapshot().retries} retries`);
  assert.equal(t.snapshot().retries, 0);
  assert.ok(r.proxy.stats.bytesFromUpstream <= size + 2 * 256 * 1024, `link bytes ${ratio.toFixed(3)}x the blob`);
}

describe('transfer: link bytes with no faults', function () {
  this.timeout(30_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('a capped link with a round trip and no faults carries at most 1.05x the blob (the tail split discards nothing in flight)', async () => {
    // The small-skopeo bench profile's link: 512 KiB/s per connection, 8 MiB/s in total, 300 ms RTT.
    const size = 16 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 512 * 1024, aggregateBytesPerSec: 8 * MiB, latencyMs: 300 } });
    // The product's chunk sizes and connection floor; 16 connections of 512 KiB/s fill the 8 MiB/s.
    const config = { minChunkBytes: 4 * MiB, maxChunkBytes: 64 * MiB, minConnections: 8, maxConnections: 16 };
    const t = r.start({ config, ...TEST_TIMING, checkpointBytes: 256 * 1024 });
    await t.done;
    await r.proxy.close();
    const { bytesFromUpstream, connections } = r.proxy.stats;
    const ratio = bytesFromUpstream / size;
    console.log(`      link bytes ${(ratio).toFixed(3)}x the blob, ${connections} connections`);
    assert.ok(ratio <= 1.05, `link bytes ${ratio.toFixed(3)}x the blob over ${connections} connections`);
  });

  it('two transfers sharing a link (a prefetch beside the client\'s blob) split no running range while they end about together', async () => {
    // The link's total, not its connections, bounds the pair: connections the link's limit gains
    // as it learns find nothing to gain, and splitting a range cuts what it had in flight.
    const size = 16 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 512 * 1024, aggregateBytesPerSec: 4 * MiB, latencyMs: 300 } });
    const config = { minChunkBytes: 4 * MiB, maxChunkBytes: 64 * MiB, minConnections: 8, maxConnections: 32 };
    const link = new LinkBudget({ minConnections: 8, maxConnections: 32, adaptIntervalMs: TEST_TIMING.adaptIntervalMs });
    const other = await mkdtemp(join(tmpdir(), 'ferry-transfer-'));
    const otherStore = await openStore(other);
    try {
      const a = r.start({ config, link, ...TEST_TIMING, checkpointBytes: 256 * 1024 });
      const b = r.start({ config, link, partials: otherStore.partials, ...TEST_TIMING, checkpointBytes: 256 * 1024 });
      await Promise.all([a.done, b.done]);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    await r.proxy.close();
    const { bytesFromUpstream, connections } = r.proxy.stats;
    const ratio = bytesFromUpstream / (2 * size);
    console.log(`      link bytes ${ratio.toFixed(3)}x the blobs, ${connections} connections`);
    assert.ok(ratio <= 1.05, `link bytes ${ratio.toFixed(3)}x the blobs over ${connections} connections`);
  });

  it('time a connection waits on its own store is not link silence: nothing is cut, nothing crosses twice', async () => {
    // A store slow to take a write for longer than stallSeconds: once every connection's writes
    // wait together (S3 partial blobs past their memory bound), once one connection's alone (a
    // run waiting for its piece to go out) while the others deliver. Both well before the blob's
    // tail, whose copies of a slow range are a loss budget of their own (tail-plan.ts).
    const size = 16 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 2 * MiB, latencyMs: 20 } });
    const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1500));
    let all: Promise<void> | undefined;
    let one: Promise<void> | undefined;
    const partials = slowWrites(r.store.partials, (pos) => {
      if (pos >= 2 * MiB && pos < 4 * MiB) return (all ??= pause());
      if (pos >= 5 * MiB && !one) return (one = pause());
      return undefined;
    });
    const config = { minChunkBytes: MiB, maxChunkBytes: MiB, minConnections: 4, maxConnections: 4, stallSeconds: 0.5 };
    const t = r.start({ config, partials });
    await t.done;
    await nothingCutNothingTwice(r, t);
  });

  it('time this process could not run is not link silence: nothing is cut, nothing crosses twice', async () => {
    // A loaded machine starves the process of CPU: for 700 ms now and then it reads nothing, and
    // every connection looks silent past stallSeconds (and the tail's 1 s with no first byte) when
    // the process runs again, its timers first, before the reads waiting in the sockets.
    const size = 16 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 2 * MiB, latencyMs: 20 } });
    const config = { minChunkBytes: MiB, maxChunkBytes: MiB, minConnections: 4, maxConnections: 4, stallSeconds: 0.5 };
    const starving = setInterval(() => starve(700), 1000);
    const t = r.start({ config });
    try {
      await t.done;
    } finally {
      clearInterval(starving);
    }
    await nothingCutNothingTwice(r, t);
  });

  it('a range whose first byte waits while the process could not run is not silent at the tail: it is not asked twice', async () => {
    // Two ranges; the first ends at once. The second's response headers came, its first bytes are
    // 200 ms away when the process starves for 1.2 s; it runs again, its timers first (the tail's
    // look at the ranges), then the bytes waiting in the socket. Only 0.3 s of the 1.4 s were the link's.
    const size = 512 * 1024;
    r = await rig(size, { faults: { latencyMs: 20 } });
    const inner = r.source;
    const source: RangeSource = {
      fetchAll: (signal, from) => inner.fetchAll(signal, from),
      async fetchRange(start, end, signal) {
        const res = await inner.fetchRange(start, end, signal);
        if (start === 0) return res;
        async function* late(): AsyncIterable<Uint8Array> {
          await new Promise((resolve) => setTimeout(resolve, 200));
          starve(1200);
          await new Promise((resolve) => setTimeout(resolve, 0));
          yield* res.body as AsyncIterable<Uint8Array>;
        }
        return { ...res, body: late() };
      },
    };
    // stallSeconds past the test: the fixed timer plays no part.
    const config = { ...TEST_CONFIG, minChunkBytes: 256 * 1024, maxChunkBytes: 256 * 1024, minConnections: 2, maxConnections: 2, stallSeconds: 60 };
    const link = new LinkBudget({ minConnections: 4, maxConnections: 4, adaptIntervalMs: TEST_TIMING.adaptIntervalMs });
    const t = r.start({ config, link, source });
    await t.done;
    await r.proxy.close();
    console.log(`      ${r.server.stats.rangeRequests} range requests, ${t.snapshot().retries} retries, link bytes ${(r.proxy.stats.bytesFromUpstream / size).toFixed(3)}x the blob`);
    assert.equal(r.server.stats.rangeRequests, 2, 'each range asked once');
    assert.equal(t.snapshot().retries, 0);
  });
});
