/**
 * Sends a byte range of a file into a sink (an HTTP response), reading into pooled slabs: one read is in flight
 * while the previous one is being written, and each slab goes back to the pool once the socket
 * has taken it. Faster than fs.createReadStream piped into the response (no fresh buffer per
 * read, no stream machinery), and memory stays bounded under many concurrent downloads.
 */
import { close, open, readv } from 'node:fs';
import type { Writable } from 'node:stream';
import { slabPool, type BufferPool } from './buffer-pool.ts';

let sending = 0;

/** Opens a file for sendFileRange; fails (ENOENT…) before any byte of the response is written. */
export function openForSend(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readvAt(fd: number, views: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => readv(fd, views, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Writes bytes start..end (inclusive) of the open file fd to res, then ends it; closes fd.
 * Resolves early, without ending, when the client goes away; rejects on a read error (the
 * caller destroys the response: its length was promised).
 */
export async function sendFileRange(res: Writable, fd: number, start: number, end: number, pool: BufferPool = slabPool): Promise<void> {
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
      const n = await readvAt(fd, views, position).catch((e: unknown) => {
        for (const b of slabs) pool.release(b);
        throw e;
      });
      if (n === 0) {
        for (const b of slabs) pool.release(b);
        throw new Error(`file ended at byte ${position}, before ${end + 1}`);
      }
      position += n;
      await writing;
      if (gone) {
        for (const b of slabs) pool.release(b);
        break;
      }
      writing = writeSlabs(res, slabs, n, pool);
    }
    await writing;
    if (!gone) res.end();
  } finally {
    sending--;
    res.off('close', onClose);
    close(fd, () => {});
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
