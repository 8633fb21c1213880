/**
 * Writes a stream of unknown length into one object, never holding more than two parts in
 * memory: up to a part it is one PutObject, past that a multipart upload, one part in flight
 * while the next fills. Nothing becomes visible before the source ended and `seal` accepted it
 * (a digest check): a multipart upload appears only at complete, a single put is sent only then.
 */
import type { Readable } from 'node:stream';
import { MIN_PART_BYTES, type CompletedPart, type S3Bucket } from './bucket.ts';

/** Part size of a write: S3's minimum is 5 MiB; 8 MiB is what the AWS CLI uses. */
export const PART_BYTES = 8 * 1024 * 1024;
/** Parts of one size before the next ones double (S3 allows 10,000: with 8 MiB the first 1000 hold 8 GiB). */
const PARTS_PER_SIZE = 1000;

export interface WriteOptions {
  /** Where a write of more than one part goes (multipart uploads cannot be renamed). */
  key: string;
  /** Sees each chunk as it passes (hash, length); a throw fails the write and keeps nothing. */
  tap?(chunk: Buffer): void;
  /**
   * Called once the source ended, before anything is visible; a throw aborts the write (nothing
   * kept). Returns the key a single-part write goes to (default: key).
   */
  seal?(): string | Promise<string>;
  /**
   * When the source fails, keep what arrived (as the object at key, unsealed), then rethrow: an
   * upload chunk cut midway, that the client resumes after.
   */
  keepOnSourceError?: boolean;
  partBytes?: number;
}

export interface Written {
  /** Where it went: the sealed key for one part, opts.key for several. */
  key: string;
  size: number;
  /** The object's etag (unquoted), to tell this version from a later one. */
  etag: string;
}

export async function writeObject(bucket: S3Bucket, source: Readable | AsyncIterable<Buffer>, opts: WriteOptions): Promise<Written> {
  const sink = new PartSink(bucket, opts.key, Math.max(opts.partBytes ?? PART_BYTES, MIN_PART_BYTES));
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer | Uint8Array>;
  let cut: unknown;
  let ended = false;
  try {
    for (;;) {
      let next: IteratorResult<Buffer | Uint8Array>;
      try {
        next = await it.next();
      } catch (e) {
        ended = true;
        if (!opts.keepOnSourceError || sink.size === 0) throw e;
        cut = e;
        break;
      }
      if (next.done) {
        ended = true;
        break;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      opts.tap?.(chunk);
      await sink.write(chunk);
    }
    const key = cut === undefined ? ((await opts.seal?.()) ?? opts.key) : opts.key;
    const written = await sink.finish(key);
    if (cut !== undefined) throw cut;
    return written;
  } catch (e) {
    if (!ended) await it.return?.().catch(() => undefined);
    await sink.abort();
    throw e;
  }
}

/** Bytes in, parts out: buffered up to one part, one part uploading at a time. */
class PartSink {
  size = 0;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private inFlight: Promise<void> = Promise.resolve();
  private done = false;

  constructor(
    private readonly bucket: S3Bucket,
    private readonly key: string,
    private readonly base: number,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes >= this.base * 2 ** Math.floor(this.parts.length / PARTS_PER_SIZE)) await this.flush();
  }

  /** Makes the object visible: at singleKey when it is one part, else by completing the upload at key. */
  async finish(singleKey: string): Promise<Written> {
    if (this.uploadId === undefined) {
      const etag = await this.bucket.put(singleKey, this.take());
      this.done = true;
      return { key: singleKey, size: this.size, etag: etag ?? '' };
    }
    if (this.bufferedBytes > 0) await this.flush();
    await this.inFlight;
    const etag = await this.bucket.completeMultipart(this.key, this.uploadId, this.parts);
    this.done = true;
    return { key: this.key, size: this.size, etag };
  }

  async abort(): Promise<void> {
    this.buffered = [];
    if (this.done || this.uploadId === undefined) return;
    await this.inFlight.catch(() => undefined);
    await this.bucket.abortMultipart(this.key, this.uploadId).catch(() => undefined);
  }

  private take(): Buffer {
    const body = Buffer.concat(this.buffered, this.bufferedBytes);
    this.buffered = [];
    this.bufferedBytes = 0;
    return body;
  }

  private async flush(): Promise<void> {
    const body = this.take();
    this.uploadId ??= await this.bucket.createMultipart(this.key);
    const uploadId = this.uploadId;
    const partNumber = this.parts.length + 1;
    this.parts.push({ partNumber, etag: '' });
    await this.inFlight;
    const upload = this.bucket.uploadPart(this.key, uploadId, partNumber, body).then((p) => { this.parts[partNumber - 1] = p; });
    upload.catch(() => undefined);
    this.inFlight = upload;
  }
}
