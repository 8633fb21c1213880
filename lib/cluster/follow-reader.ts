/**
 * A follower's client stream: bytes [start, end) of a blob another replica is transferring, read
 * from the bucket as its progress grows (progress-watcher.ts), each readable run as soon as it is
 * there, with the backpressure of the client (one run's stream at a time, nothing buffered here).
 *
 * When the holder dies, `onOrphaned` is called (claim the transfer and become its holder: the new
 * holder publishes progress too) and the stream goes on following; without it, or when it fails,
 * the stream fails with the error.
 */
import type { Readable } from 'node:stream';
import { interruptibleFrom } from './interruptible-from.ts';
import { availableEnd, TransferOrphanedError, type ProgressWatcher } from './progress-watcher.ts';

export interface FollowReaderOptions {
  watcher: ProgressWatcher;
  start: number;
  /** Exclusive. */
  end: number;
  /** The bytes [start, end) as the bucket holds them (the storage backend's partial-blob range read). */
  readRange(start: number, end: number, signal: AbortSignal): Promise<Readable>;
  /** The transfer lost its holder: take it over (resolves once this replica holds it or another does). */
  onOrphaned?(err: TransferOrphanedError): Promise<void>;
}

export function createFollowReader(opts: FollowReaderOptions): Readable {
  const abort = new AbortController();
  async function* follow(): AsyncGenerator<Buffer> {
    let offset = opts.start;
    while (offset < opts.end) {
      let runEnd: number;
      try {
        runEnd = Math.min(availableEnd(await opts.watcher.until(offset, abort.signal), offset), opts.end);
      } catch (err) {
        if (!(err instanceof TransferOrphanedError) || !opts.onOrphaned) throw err;
        await opts.onOrphaned(err);
        continue;
      }
      const body = await opts.readRange(offset, runEnd, abort.signal);
      for await (const chunk of body) {
        const buf = chunk as Buffer;
        offset += buf.length;
        yield buf;
      }
      if (offset !== runEnd) throw new Error(`bucket read of ${opts.watcher.digest} [${offset}, ${runEnd}) ended short`);
    }
  }
  return interruptibleFrom(follow(), () => abort.abort(new Error('follow reader closed')));
}
