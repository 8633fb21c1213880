/** A range cut for silence hands its rest to the link's free connections instead of asking it whole on one. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../../lib/storage/store.ts';
import type { RangeResponse, RangeSource } from '../../lib/transfer/range-source.ts';
import { startTransfer } from '../../lib/transfer/transfer.ts';
import { KiB, MiB, TEST_CONFIG, TEST_TIMING } from './harness.ts';
import { makeBlob, sha256 } from './range-server.ts';

interface Asked { start: number; end: number; at: number }

/**
 * `data` by range after a round trip of `rttMs`, 16 KiB every 10 ms; the first request starting at
 * `stallAt.start` stops after `stallAt.after` bytes until it is cut (a stall that never ends).
 */
function stallingSource(data: Buffer, rttMs: number, stallAt: { start: number; after: number }): RangeSource & { asked: Asked[]; cutAt: number | undefined } {
  let stalled = false;
  const source = {
    asked: [] as Asked[],
    cutAt: undefined as number | undefined,
    fetchRange: async (start: number, end: number, signal: AbortSignal): Promise<RangeResponse> => {
      source.asked.push({ start, end, at: performance.now() });
      const stalls = !stalled && start === stallAt.start;
      stalled ||= stalls;
      await sleep(rttMs, undefined, { signal });
      async function* body(): AsyncGenerator<Uint8Array> {
        for (let at = start; at <= end; at += 16 * KiB) {
          if (stalls && at - start >= stallAt.after) {
            await sleep(60_000, undefined, { signal }).catch((e: unknown) => {
              source.cutAt = performance.now();
              throw e;
            });
          }
          await sleep(10, undefined, { signal });
          yield data.subarray(at, Math.min(end + 1, at + 16 * KiB));
        }
      }
      return { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${data.length}` }, body: Readable.from(body()) };
    },
    fetchAll: () => Promise.reject(new Error('not used')),
  };
  return source;
}

describe('transfer: a range cut for silence', function () {
  this.timeout(30_000);

  it('has its rest spread over the link\'s free connections when it is asked again, not asked whole on one', async () => {
    // Eight requests of 1 MiB on eight connections; the last stalls for good after 512 KiB, when the
    // others are about done. A 150 ms round trip: splitting it while it runs would drop what it has in
    // flight (the tail plan will not), but once the stall timer cut it nothing is in flight.
    const size = 8 * MiB;
    const data = makeBlob(size, 11);
    const source = stallingSource(data, 150, { start: 7 * MiB, after: 512 * KiB });
    const root = await mkdtemp(join(tmpdir(), 'ferry-stall-spread-'));
    try {
      const store = await openStore(root);
      const config = { ...TEST_CONFIG, minChunkBytes: 1 * MiB, maxChunkBytes: 1 * MiB, minConnections: 8, maxConnections: 8, stallSeconds: 0.4 };
      const t = startTransfer({ digest: sha256(data), size, source, partials: store.partials, config, ...TEST_TIMING });
      await t.done;
      assert.deepEqual(await readFile(store.paths.blob(sha256(data))), data);
      const cutAt = source.cutAt;
      assert.ok(cutAt !== undefined, 'the stalled request was cut');
      // What was asked of the stalled range's rest once it was cut.
      const rest = source.asked.filter((a) => a.at >= cutAt && a.start >= 7 * MiB + 512 * KiB && a.start < size);
      console.log(`      after the cut: ${rest.map((a) => `${a.start - 7 * MiB}-${a.end - 7 * MiB}`).join(', ')} (of the last MiB)`);
      // Old code: one request, its whole rest, on the one connection.
      assert.ok(rest.length >= 2, `the rest was asked in ${rest.length} request(s)`);
      assert.ok(t.snapshot().tailSplits >= 1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
