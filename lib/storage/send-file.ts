/**
 * Sends a byte range into a sink (an HTTP response), reading into pooled slabs: one read is in
 * flight while the previous one is being written, and each slab goes back to the pool once the
 * socket has taken it. Faster than a read stream piped into the response (no fresh buffer per
 * read, no stream machinery), and memory stays bounded under many concurrent downloads. A file
 * (sendFileRange), or any positional source (sendRange: a blob still arriving, prefix-reader.ts).
 */
import { close, open, readv } from 'node:fs';
import type { Writable } from 'node:stream';
import { slabPool, type BufferPool } from './buffer-pool.ts';
import type { PartialReader } from './partial-blobs.ts';

let sending = 0;

/**
 * Reads the bytes at position into views, in order; resolves with how many it read (it may stop
 * short, but 0 only where no byte is left).
 */
export type ReadInto = (views: Buffer[], position: number) => Promise<number>;

export interface SendRangeOptions {
  pool?: BufferPool;
  /**
   * Called for each batch once it was read, before it is written; a throw stops the
   * send with that error (bytes read may no longer be safe to send: prefix-reader.ts).
   */
  beforeWrite?: () => void;
}

/** Opens a file for sendFileRange; fails (ENOENT…) before any byte of the response is written. */
export function openForSend(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readvAt(fd: number, views: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => readv(fd, views, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** ReadInto over a PartialBlobStorage.openReader: one readv where it has one, else views filled one after another. */
export function readIntoViews(reader: PartialReader): ReadInto {
  const readv = reader.readv?.bind(reader);
  if (readv) return (views, position) => readv(views, position);
  return async (views, position) => {
    let n = 0;
    for (const view of views) {
      const got = await reader.read(position + n, view);
      n += got;
      if (got < view.length) break;
    }
    return n;
  };
}

/**
 * Writes bytes start..end (inclusive) of the open file fd to res, then ends it; closes fd.
 * Resolves early, without ending, when the client goes away; rejects on a read error (the
 * caller destroys the response: its length was promised).
 */
export async function sendFileRange(res: Writable, fd: number, start: number, end: number, pool: BufferPool = slabPool): Promise<void> {
  try {
    await sendRange(res, async (views, position) => {
      const n = await readvAt(fd, views, position);
      if (n === 0) throw new Error(`file ended at byte ${position}, before ${end + 1}`);
      return n;
    }, start, end, { pool });
  } finally {
    close(fd, () => {});
  }
}

/**
 * Writes bytes start..end (inclusive) that `read` reads to res, then ends it. Resolves with true once the socket took every byte; with false, early and without
 * ending, when the client went away; rejects on a read error or opts.beforeWrite's (the caller
 * destroys the response: its length was promised).
 */
export async function sendRange(res: Writable, read: ReadInto, start: number, end: number, opts: SendRangeOptions = {}): Promise<boolean> {
  const pool = opts.pool ?? slabPool;
  const slab = pool.opts.slabSize;
  sending++;
  let gone = res.destroyed;
  const onClose = (): void => { gone = true; };
  res.once('close', onClose);
  // The write in flight; resolves once the socket has taken it (or the client left).
  let writing: Promise<void> = Promise.resolve();
  try {
    let position = start;
    while (position <= end && !gone) {
      const want = Math.min(pool.slabsPerRead(sending) * slab, end - position + 1);
      const slabs: Buffer[] = [];
      for (let taken = 0; taken < want; taken += slab) slabs.push(pool.acquire());
      const views = slabs.map((b, i) => (i === slabs.length - 1 ? b.subarray(0, want - i * slab) : b));
      let n: number;
      try {
        n = await read(views, position);
        if (n === 0) throw new Error(`the source ended at byte ${position}, before ${end + 1}`);
        await writing;
        if (!gone) opts.beforeWrite?.();
      } catch (e) {
        for (const b of slabs) pool.release(b);
        throw e;
      }
      if (gone) {
        for (const b of slabs) pool.release(b);
        break;
      }
      position += n;
      writing = writeSlabs(res, slabs, n, pool);
    }
    await writing;
    if (!gone) res.end();
    return !gone;
  } finally {
    sending--;
    res.off('close', onClose);
  }
}

/**
 * Writes the first n bytes held in slabs as one batch (corked: a single writev); each slab goes
 * back to the pool once the socket no longer needs it. Resolves when the last one is taken.
 */
function writeSlabs(res: Writable, slabs: Buffer[], n: number, pool: BufferPool): Promise<void> {
  const slab = pool.opts.slabSize;
  const used = Math.ceil(n / slab);
  for (const b of slabs.slice(used)) pool.release(b);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      res.off('close', settle);
      resolve();
    };
    // A destroyed socket may never call back: stop waiting, and leave its slabs to the GC.
    res.once('close', settle);
    res.cork();
    for (let i = 0; i < used; i++) {
      const b = slabs[i] as Buffer;
      const last = i === used - 1;
      res.write(last ? b.subarray(0, n - i * slab) : b, (err) => {
        if (!err) pool.release(b);
        if (last) settle();
      });
    }
    res.uncork();
  });
}
