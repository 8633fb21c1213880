/**
 * The fs backend's BlobStream: a byte range of a file opened before the stream is handed out (so
 * a missing blob is known before any response header, and a blob deleted meanwhile still reads
 * whole). Read as a Readable (positional reads into fresh buffers), or sent with writeTo, the
 * serving fast path: pooled slabs, one read in flight while the previous write drains
 * (send-file.ts).
 */
import { close, read } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import type { BlobStream } from './storage.ts';
import { sendFileRange } from './send-file.ts';

const READ_SIZE = 1024 * 1024;

export class FileBlobStream extends Readable implements BlobStream {
  private fd: number | undefined;
  private position: number;

  /** Takes ownership of fd: it is closed when the stream ends, is destroyed, or writeTo settles. */
  constructor(fd: number, start: number, private readonly end: number) {
    super({ highWaterMark: READ_SIZE });
    this.fd = fd;
    this.position = start;
  }

  override _read(size: number): void {
    const fd = this.fd;
    if (fd === undefined) return;
    const want = Math.min(Math.max(size, READ_SIZE), this.end - this.position + 1);
    if (want <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(want);
    read(fd, buf, 0, want, this.position, (err, n) => {
      if (err) {
        this.destroy(err);
        return;
      }
      if (n === 0) {
        this.destroy(new Error(`file ended at byte ${this.position}, before ${this.end + 1}`));
        return;
      }
      this.position += n;
      this.push(n === want ? buf : buf.subarray(0, n));
      if (this.position > this.end) this.push(null);
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.release();
    cb(err);
  }

  async writeTo(sink: Writable): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) throw new Error('blob stream already consumed');
    // sendFileRange closes the fd itself.
    this.fd = undefined;
    try {
      await sendFileRange(sink, fd, this.position, this.end);
    } finally {
      this.destroy();
    }
  }

  private release(): void {
    if (this.fd !== undefined) close(this.fd, () => {});
    this.fd = undefined;
  }
}
