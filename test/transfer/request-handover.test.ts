/**
 * A request hands its connection on in its last round trip (LinkGrant.ending); one reset there
 * retries, and the retry holds a connection of the link again (unending), counted, instead of
 * delivering beside the next request outside the link's limit (found in review of 2a6c694).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchRange, liveRange, type FetchContext } from '../../lib/transfer/range-fetcher.ts';
import type { RangeResponse, RangeSource } from '../../lib/transfer/range-source.ts';

const KiB = 1024;
const SIZE = 64 * KiB;

/** 1 KiB every 10 ms after a 100 ms round trip (its last 10 KiB are its last round trip); the first attempt is reset 4 KiB before its end. */
function pacedSource(): RangeSource & { attempts: number } {
  const source = {
    attempts: 0,
    async fetchRange(start: number, end: number, signal: AbortSignal): Promise<RangeResponse> {
      const attempt = ++source.attempts;
      await sleep(100, undefined, { signal });
      async function* body(): AsyncIterable<Uint8Array> {
        for (let pos = start; pos <= end; pos += KiB) {
          await sleep(10, undefined, { signal });
          if (attempt === 1 && end + 1 - pos <= 4 * KiB) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
          yield Buffer.alloc(Math.min(KiB, end + 1 - pos), 7);
        }
      }
      return { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${SIZE}`, 'content-length': String(end + 1 - start) }, body: Readable.from(body()) };
    },
    fetchAll(): Promise<RangeResponse> {
      throw new Error('not used');
    },
  };
  return source;
}

describe('a request handed on in its last round trip, then reset', function () {
  this.timeout(20_000);

  it('tells its link it goes on (unending) before it retries, and finishes the range', async () => {
    const calls: string[] = [];
    const source = pacedSource();
    let written = 0;
    const ctx: FetchContext = {
      source, size: SIZE, stallMs: 10_000, random: () => 0.5, checkpointBytes: 4 * KiB,
      policy: { attempts: 3, baseMs: 1, maxMs: 1, jitter: 'full', maxRetryAfterMs: 1000 },
      write: (_pos, buf) => { written += buf.length; return Promise.resolve(); },
      checkpoint: () => {}, attemptStarted: () => {}, attemptEnded: () => {}, sizeDisagrees: () => false,
    };
    await fetchRange(ctx, liveRange({ start: 0, end: SIZE - 1 }), 'range', new AbortController().signal, {
      ending: () => { calls.push('ending'); return true; },
      unending: () => { calls.push('unending'); },
      answered: () => {},
    });
    assert.equal(source.attempts, 2);
    assert.equal(written, SIZE);
    // Handed on near the end of the first attempt, taken back at its reset before the retry (too short to hand on again).
    assert.deepEqual(calls, ['ending', 'unending']);
  });

  it('hands on a round trip of its route from its end, not of its own wait for a first byte, and tells the response', async () => {
    // A relay answers a range at its first byte: 1 s here (its own transfer had not reached the
    // range), while its round trip is 100 ms. Then 1 KiB every 10 ms (~100 KiB/s).
    const size = 256 * KiB;
    const calls: string[] = [];
    let pos = 0;
    const source: RangeSource = {
      async fetchRange(start: number, end: number, signal: AbortSignal): Promise<RangeResponse> {
        await sleep(1000, undefined, { signal });
        async function* body(): AsyncIterable<Uint8Array> {
          for (let p = start; p <= end; p += KiB) {
            await sleep(10, undefined, { signal });
            yield Buffer.alloc(Math.min(KiB, end + 1 - p), 7);
          }
        }
        return {
          status: 206, headers: { 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': String(end + 1 - start) }, body: Readable.from(body()),
          roundTripMs: 100, ending: () => { calls.push('response told'); },
        };
      },
      fetchAll(): Promise<RangeResponse> {
        throw new Error('not used');
      },
    };
    let leftAtEnding: number | undefined;
    const ctx: FetchContext = {
      source, size, stallMs: 10_000, random: () => 0.5, checkpointBytes: 64 * KiB,
      policy: { attempts: 0, baseMs: 1, maxMs: 1, jitter: 'full', maxRetryAfterMs: 1000 },
      write: (_pos, buf) => { pos += buf.length; return Promise.resolve(); },
      checkpoint: () => {}, attemptStarted: () => {}, attemptEnded: () => {}, sizeDisagrees: () => false,
    };
    await fetchRange(ctx, liveRange({ start: 0, end: size - 1 }), 'range', new AbortController().signal, {
      ending: () => { calls.push('ending'); leftAtEnding = size - pos; return true; },
      unending: () => { calls.push('unending'); },
      answered: () => {},
    });
    assert.deepEqual(calls, ['ending', 'response told']);
    // A round trip of 100 ms at ~100 KiB/s is ~10 KiB; the wait for the first byte (1 s) would be ~100 KiB.
    assert.ok(leftAtEnding !== undefined && leftAtEnding <= 32 * KiB, `handed on with ${((leftAtEnding ?? 0) / KiB).toFixed(0)} KiB left`);
  });
});
