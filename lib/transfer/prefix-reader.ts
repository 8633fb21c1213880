/**
 * Streams bytes [start, end] of a blob while its transfer is still running: it reads the partial
 * blob up to what the transfer releases from where it is (Transfer.releasedEnd: checked bytes,
 * minus the last until the digest matched) and waits for more, asking the transfer to fetch them
 * first (Transfer.want). It errors when the transfer fails, or when bytes
 * it already sent may have been wrong (a refetch after a mismatch), so a client never completes a
 * bad blob.
 * Storage reads the committed blob once the partial became it (PartialBlobStorage.read).
 * Sent with writeTo (the HTTP layer's fast path, where the storage reads positionally), the bytes
 * go through pooled slabs (send-file.ts sendRange), each back in the pool once the socket took
 * it; read as a stream, each read is a fresh buffer: the image's size again in garbage per pull,
 * which raised the mirror's peak RSS.
 */
import { Readable, type Writable } from 'node:stream';
import type { PartialReader } from '../storage/partial-blobs.ts';
import { readIntoViews, sendRange, type ReadInto } from '../storage/send-file.ts';
import type { BlobStream } from '../storage/storage.ts';
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

/** About to send bytes of the generation `sent` holds: throws if they may no longer be sent, else counts them sent. */
function markSent(t: Transfer, sent: Sent): void {
  const err = unsafe(t, sent.generation);
  if (err) throw err;
  sent.any = true;
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
        markSent(t, sent);
        pos += chunk.length;
        yield chunk;
      }
    } finally {
      stored.destroy();
    }
    if (pos <= last) throw new Error(`short read of the transfer at ${pos}`);
  }
}

/**
 * Writes bytes [start, end] into sink as they become safe to send, read into pooled slabs, then
 * ends it. Resolves early, without ending it, when sink closes first (reader is destroyed then, so
 * nothing waits for the transfer any more); rejects when the transfer fails or refetched bytes
 * already sent.
 */
async function sendPrefix(t: Transfer, start: number, end: number, open: () => Promise<PartialReader>, reader: Readable, sink: Writable): Promise<void> {
  let gone = false;
  const onClose = (): void => {
    gone = true;
    reader.destroy();
  };
  sink.once('close', onClose);
  // A sink closed already (its client left while the blob got ready) said so before we listened.
  if (sink.destroyed) onClose();
  let stored: PartialReader | undefined;
  const sent: Sent = { generation: t.generation, any: false };
  // One send: each read waits for released bytes and reads no further, the previous batch going out meanwhile.
  const readLive: ReadInto = async (views, pos) => {
    const available = Math.min(end + 1, await released(t, pos, sent, reader));
    // Opened once bytes are released: the partial blob exists by then.
    stored ??= await open();
    let room = available - pos;
    const within: Buffer[] = [];
    for (const v of views) {
      if (room <= 0) break;
      within.push(v.length <= room ? v : v.subarray(0, room));
      room -= v.length;
    }
    return readIntoViews(stored)(within, pos);
  };
  try {
    // Checked before each batch goes out: bytes read after a reset may be the wrong ones.
    await sendRange(sink, readLive, start, end, { beforeWrite: () => markSent(t, sent) });
  } catch (e) {
    if (gone) return;
    throw e;
  } finally {
    sink.off('close', onClose);
    await stored?.close().catch(() => {});
  }
}

/**
 * A stream of bytes [start, end] (inclusive) of the transfer's blob, as they become safe to send;
 * with writeTo (pooled slabs) where the storage reads positionally (Transfer.openStored).
 */
export function createPrefixReader(transfer: Transfer, start = 0, end = transfer.size - 1): BlobStream {
  if (start < 0 || end >= transfer.size || start > end + 1) throw new RangeError(`bad range ${start}-${end} of ${transfer.size}`);
  const stream: BlobStream = Readable.from(prefix(transfer, start, end, () => stream), { objectMode: false, highWaterMark: READ_MAX });
  const open = transfer.openStored;
  if (open) {
    stream.writeTo = async (sink) => {
      try {
        await sendPrefix(transfer, start, end, open, stream, sink);
      } finally {
        stream.destroy();
      }
    };
  }
  return stream;
}
