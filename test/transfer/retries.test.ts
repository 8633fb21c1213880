/** What counts as a retry: an attempt that failed, never one we cancelled (a tail copy that lost, a range aborted by us). */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { RETRY_POLICIES } from '../../lib/retry/policy.ts';
import { fetchRange, liveRange, type FetchContext } from '../../lib/transfer/range-fetcher.ts';
import type { RangeResponse, RangeSource } from '../../lib/transfer/range-source.ts';
import { CHUNK, KiB, TEST_CONFIG, rig, type Rig } from './harness.ts';

/** How a request's body comes: `bytes` every `ms`, and, past `failAfter` bytes, a reset. */
interface Pace { bytes: number; ms: number; failAfter?: number }

/** `data` served by range, each request paced as `pace` says for its number and start. */
function pacedSource(data: Buffer, pace: (request: number, start: number) => Pace): RangeSource & { requests: number } {
  const source = {
    requests: 0,
    fetchRange: async (start: number, end: number, signal: AbortSignal): Promise<RangeResponse> => {
      const p = pace(source.requests++, start);
      async function* body(): AsyncGenerator<Uint8Array> {
        for (let at = start, sent = 0; at <= end; at += p.bytes, sent += p.bytes) {
          if (p.failAfter !== undefined && sent >= p.failAfter) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
          await sleep(p.ms, undefined, { signal });
          yield data.subarray(at, Math.min(end + 1, at + p.bytes));
        }
      }
      return { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${data.length}` }, body: Readable.from(body()) };
    },
    fetchAll: () => Promise.reject(new Error('not used')),
  };
  return source;
}

const FAST: Pace = { bytes: 16 * KiB, ms: 10 };

describe('retries', function () {
  this.timeout(30_000);

  describe('of one range', () => {
    /** A fetch context that records what each attempt ended with. */
    function context(source: RangeSource, size: number, ended: unknown[]): FetchContext {
      return {
        source, size, stallMs: 10_000, policy: { ...RETRY_POLICIES.transfer, baseMs: 10, maxMs: 20, attempts: 3 }, random: () => 0.5,
        checkpointBytes: 64 * KiB, write: async () => {}, checkpoint: () => {}, attemptStarted: () => {},
        attemptEnded: (err) => ended.push(err), sizeDisagrees: () => false,
      };
    }

    it('an attempt we abort (no reason: a plain AbortError) ends without a failure; a reset is one', async () => {
      const data = Buffer.alloc(256 * KiB, 7);
      const ended: unknown[] = [];
      const ours = new AbortController();
      const slow = pacedSource(data, () => ({ bytes: 4 * KiB, ms: 20 }));
      const fetching = fetchRange(context(slow, data.length, ended), liveRange({ start: 0, end: data.length - 1 }), 'range', ours.signal);
      await sleep(100);
      ours.abort();
      await assert.rejects(fetching, { name: 'AbortError' });
      assert.deepEqual(ended, [undefined], 'cancelled by us: not a failed attempt');

      ended.length = 0;
      const resets = pacedSource(data, (n) => (n === 0 ? { ...FAST, failAfter: 64 * KiB } : FAST));
      await fetchRange(context(resets, data.length, ended), liveRange({ start: 0, end: data.length - 1 }), 'range', new AbortController().signal);
      assert.equal(ended.length, 2);
      assert.equal((ended[0] as { code?: string } | undefined)?.code, 'ECONNRESET');
      assert.equal(ended[1], undefined);
    });
  });

  describe('of a transfer', () => {
    let r: Rig | undefined;
    afterEach(async () => {
      await r?.close();
      r = undefined;
    });

    // Eight ranges of 256 KiB on eight connections; the first request of the last one crawls
    // (40 KiB/s, 6 s alone), every other is fast: the tail copies it, and the first copy to end wins.
    const size = 8 * CHUNK;
    const config = { ...TEST_CONFIG, minConnections: 8, maxConnections: 8, stallSeconds: 20 };
    const crawlsOnce = (n: number, start: number, first: { n: number | undefined }): Pace => {
      if (start !== 7 * CHUNK || first.n !== undefined) return FAST;
      first.n = n;
      return { bytes: 2 * KiB, ms: 50 };
    };

    it('a tail copy race with no failure reports no retry', async () => {
      r = await rig(size);
      const first = { n: undefined as number | undefined };
      const t = r.start({ source: pacedSource(r.data, (n, start) => crawlsOnce(n, start, first)), config });
      const result = await t.done;
      const s = t.snapshot();
      assert.ok(s.tailCopies >= 1, `no tail copy (${s.tailSplits} splits): the test shows nothing`);
      assert.equal(result.retries, 0);
      assert.equal(s.retries, 0);
      assert.equal(s.stallCuts, 0);
      assert.ok(result.durationMs < 4000, `took ${result.durationMs} ms: the crawling request alone needs 6 s`);
    });

    it('a reset during a tail copy race still counts', async () => {
      r = await rig(size);
      const first = { n: undefined as number | undefined };
      // The first request of the first range is reset after 64 KiB, and resumed.
      const t = r.start({ source: pacedSource(r.data, (n, start) => (start === 0 && n === 0 ? { ...FAST, failAfter: 64 * KiB } : crawlsOnce(n, start, first))), config });
      const result = await t.done;
      const s = t.snapshot();
      assert.ok(s.tailCopies >= 1, `no tail copy (${s.tailSplits} splits): the test shows nothing`);
      assert.equal(result.retries, 1);
      assert.equal(s.retries, 1);
    });
  });
});
