/**
 * Streams bytes [start, end] of a blob while its transfer is still running: it reads the part
 * file up to what the transfer releases (the hashed prefix, minus the last byte until the digest
 * matched) and waits for more. It errors when the transfer fails, or when bytes it already sent
 * may have been wrong (a refetch after a mismatch), so a client never completes a bad blob.
 * The file descriptor stays open, so the part being renamed into the store mid-read is harmless.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Transfer } from './transfer.ts';
import { TransferAbortedError } from './errors.ts';

const READ_MAX = 256 * 1024;

class PrefixReader extends Readable {
  private pos: number;
  private fh: FileHandle | undefined;
  private generation: number;
  private reading = false;
  private sent = false;

  constructor(private readonly transfer: Transfer, start: number, private readonly end: number) {
    super({ highWaterMark: READ_MAX });
    this.pos = start;
    this.generation = transfer.generation;
  }

  override _read(size: number): void {
    if (this.reading) return;
    this.reading = true;
    this.readMore(size).then(
      () => {
        this.reading = false;
      },
      (e: unknown) => this.destroy(e as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return cb(err);
    fh.close().then(() => cb(err), () => cb(err));
  }

  private async readMore(size: number): Promise<void> {
    if (this.pos > this.end) {
      this.push(null);
      return;
    }
    const available = await this.waitFor(this.pos + 1);
    const fh = await this.file();
    const len = Math.min(Math.max(size, 16 * 1024), READ_MAX, available - this.pos, this.end + 1 - this.pos);
    const buf = Buffer.allocUnsafe(len);
    const { bytesRead } = await fh.read(buf, 0, len, this.pos);
    if (bytesRead === 0) throw new Error(`short read of the transfer at ${this.pos}`);
    this.pos += bytesRead;
    this.sent = true;
    this.push(buf.subarray(0, bytesRead));
  }

  /** Resolves with the released byte count once it reaches `need`. */
  private waitFor(need: number): Promise<number> {
    const t = this.transfer;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (t.generation !== this.generation) {
          if (this.sent) return finish(new TransferAbortedError('the transfer refetched bytes already sent'));
          this.generation = t.generation;
        }
        // A failed transfer releases nothing more, even bytes it had on disk.
        if (t.state === 'failed' || t.state === 'aborted') return finish(t.error ?? new TransferAbortedError());
        if (t.releasedBytes >= need) return finish(undefined, t.releasedBytes);
        if (this.destroyed) return finish(new TransferAbortedError('reader closed'));
        return false;
      };
      const finish = (err: Error | undefined, n = 0): true => {
        t.off('advance', check);
        t.off('reset', check);
        t.off('failed', check);
        this.off('close', check);
        if (err) reject(err);
        else resolve(n);
        return true;
      };
      if (check()) return;
      t.on('advance', check);
      t.on('reset', check);
      t.on('failed', check);
      this.on('close', check);
    });
  }

  /** The part file, or the blob it became when the transfer already committed it. */
  private async file(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    const t = this.transfer;
    try {
      this.fh = await open(t.committedPath ?? t.partPath, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // Renamed under us: wait for the commit to say where to, unless it already has.
      if (t.state === 'running') {
        await new Promise<void>((resolve, reject) => {
          const verified = (): void => {
            t.off('failed', failed);
            resolve();
          };
          const failed = (err: Error): void => {
            t.off('verified', verified);
            reject(err);
          };
          t.once('verified', verified);
          t.once('failed', failed);
        });
      }
      if (!t.committedPath || t.committedPath === t.partPath) {
        throw new TransferAbortedError(`the blob left ${t.partPath}; onVerified must return its new path`);
      }
      this.fh = await open(t.committedPath, 'r');
    }
    if (this.destroyed) {
      await this.fh.close();
      throw new TransferAbortedError('reader closed');
    }
    return this.fh;
  }
}

/** A Readable of bytes [start, end] (inclusive) of the transfer's blob, as they become safe to send. */
export function createPrefixReader(transfer: Transfer, start = 0, end = transfer.size - 1): Readable {
  if (start < 0 || end >= transfer.size || start > end + 1) throw new RangeError(`bad range ${start}-${end} of ${transfer.size}`);
  return new PrefixReader(transfer, start, end);
}
