/**
 * Streams bytes [start, end] of a blob while its transfer is still running: it reads the partial
 * blob up to what the transfer releases from where it is (Transfer.releasedEnd: checked bytes,
 * minus the last until the digest matched) and waits for more, asking the transfer to fetch them
 * first (Transfer.want). It errors when the transfer fails, or when bytes
 * it already sent may have been wrong (a refetch after a mismatch), so a client never completes a
 * bad blob.
 * Storage reads the committed blob once the partial became it (PartialBlobStorage.read).
 */
import { Readable } from 'node:stream';
import type { Transfer } from './transfer.ts';
import { TransferAbortedError } from './errors.ts';

const READ_MAX = 256 * 1024;

/** What a reader sent: bytes of which generation of the transfer, if any yet. */
interface Sent {
  generation: number;
  any: boolean;
}

/**
 * Resolves with where the released bytes from `pos` end (Transfer.releasedEnd) once there is at
 * least one; rejects once the transfer failed or refetched bytes already sent.
 */
function released(t: Transfer, pos: number, sent: Sent, reader: Readable): Promise<number> {
  let unwant: (() => void) | undefined;
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      // Before the first byte went out, a refetch only means reading the new bytes.
      if (!sent.any) sent.generation = t.generation;
      const err = unsafe(t, sent.generation);
      if (err) return finish(err);
      const end = t.releasedEnd(pos);
      if (end > pos) return finish(undefined, end);
      if (reader.destroyed) return finish(new TransferAbortedError('reader closed'));
      unwant ??= t.want(pos);
      return false;
    };
    const finish = (err: Error | undefined, n = 0): true => {
      unwant?.();
      t.off('advance', check);
      t.off('reset', check);
      t.off('failed', check);
      reader.off('close', check);
      if (err) reject(err);
      else resolve(n);
      return true;
    };
    if (check()) return;
    t.on('advance', check);
    t.on('reset', check);
    t.on('failed', check);
    reader.on('close', check);
  });
}

/** Why bytes of generation `generation` may no longer be sent, if they may not. */
function unsafe(t: Transfer, generation: number): Error | undefined {
  if (t.generation !== generation) return new TransferAbortedError('the transfer refetched bytes already sent');
  // A failed transfer releases nothing more, even bytes it had stored.
  if (t.state === 'failed' || t.state === 'aborted') return t.error ?? new TransferAbortedError();
  return undefined;
}

async function* prefix(t: Transfer, start: number, end: number, reader: () => Readable): AsyncGenerator<Buffer> {
  let pos = start;
  const sent: Sent = { generation: t.generation, any: false };
  while (pos <= end) {
    const available = await released(t, pos, sent, reader());
    const last = Math.min(end, available - 1);
    const stored = await t.readStored({ start: pos, end: last });
    try {
      for await (const chunk of stored as AsyncIterable<Buffer>) {
        // Checked before each chunk goes out: bytes read after a reset may be the wrong ones.
        const err = unsafe(t, sent.generation);
        if (err) throw err;
        pos += chunk.length;
        sent.any = true;
        yield chunk;
      }
    } finally {
      stored.destroy();
    }
    if (pos <= last) throw new Error(`short read of the transfer at ${pos}`);
  }
}

/** A Readable of bytes [start, end] (inclusive) of the transfer's blob, as they become safe to send. */
export function createPrefixReader(transfer: Transfer, start = 0, end = transfer.size - 1): Readable {
  if (start < 0 || end >= transfer.size || start > end + 1) throw new RangeError(`bad range ${start}-${end} of ${transfer.size}`);
  const stream: Readable = Readable.from(prefix(transfer, start, end, () => stream), { objectMode: false, highWaterMark: READ_MAX });
  return stream;
}
