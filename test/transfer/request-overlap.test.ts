import assert from 'node:assert/strict';
import { requestsOf } from '../../bench/lib/link-timeline.ts';
import { LinkBudget, overlapFor } from '../../lib/transfer/link-budget.ts';
import { MiB, TEST_TIMING, rig, type Rig } from './harness.ts';

describe('transfer: the next request is asked in the last round trip of one that ends', function () {
  this.timeout(60_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('asks the next range while the link still delivers as many as its limit, so a request\'s round trip is not spent with its connection idle', async () => {
    // The small-docker bench profile's link, scaled: a per-connection cap, a long round trip, no total cap.
    const limit = 8;
    const size = 8 * MiB;
    r = await rig(size, { faults: { rateBytesPerSec: 256 * 1024, latencyMs: 300 } });
    r.proxy.trace();
    const link = new LinkBudget({ minConnections: limit, maxConnections: limit, adaptIntervalMs: 60_000 });
    // Requests of 256 KiB (a chunk): a second of data each, behind a 300 ms round trip.
    const t = r.start({ link, config: { minChunkBytes: 256 * 1024, maxChunkBytes: 256 * 1024, smallBlobBytes: 64 * 1024, minConnections: limit, maxConnections: limit, stallSeconds: 20, holdUnverified: true }, ...TEST_TIMING });
    await t.done;
    await r.proxy.close();
    const requests = requestsOf(r.proxy.traceEvents ?? []).filter((q) => q.bytes > 0);
    // Requests delivering (their last byte still to come) when each later one was sent.
    const outstanding = requests.map((q) => requests.filter((o) => o !== q && o.sentAt <= q.sentAt && (o.lastAt ?? 0) > q.sentAt).length);
    const later = outstanding.slice(limit);
    const overlapped = later.filter((n) => n >= limit).length;
    console.log(`      ${requests.length} requests; of the ${later.length} after the first ${limit}, ${overlapped} sent while ${limit} others delivered; most outstanding ${Math.max(...outstanding) + 1}`);
    // Old code: a request is asked only once one ended (never `limit` delivering then): 0 of 24.
    // Here about half (at most overlapFor(limit) of the 8 hand their connection on at once).
    assert.ok(overlapped >= later.length / 3, `${overlapped} of ${later.length} requests were asked before one of the ${limit} running ended`);
    assert.ok(Math.max(...outstanding) + 1 <= limit + overlapFor(limit), `at most ${limit + overlapFor(limit)} requests at once`);
    assert.ok(r.proxy.stats.bytesFromUpstream <= size * 1.01, `link bytes ${(r.proxy.stats.bytesFromUpstream / size).toFixed(3)}x the blob`);
  });
});
