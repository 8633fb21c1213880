/**
 * The S3 backend's PartialBlobStorage: pull-through transfers in progress, as pieces under
 * partials/<alg>/<hex>/ (keys.ts). What is here: the figures, listing and sweeping of what is
 * under that prefix, and the transfer state. Not yet: writing a partial blob (open) and reading
 * one (read): a mirror on S3 cannot pull through until they are (issue 15); both say so.
 */
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../oci/range.ts';
import type { PartialBlob, PartialBlobInfo, PartialBlobStorage } from '../partial-blobs.ts';
import type { S3Bucket } from './bucket.ts';
import { digestOfPath, keys } from './keys.ts';

const NOT_YET = 'the S3 backend does not keep pull-through transfers yet (partial blobs on S3: issue 15); use the filesystem backend for a pull-through mirror';

export class S3PartialBlobStorage implements PartialBlobStorage {
  constructor(private readonly bucket: S3Bucket) {}

  open(_digest: string, _size: number): Promise<PartialBlob> {
    return Promise.reject(new Error(NOT_YET));
  }

  read(_digest: string, _range: ByteRange): Promise<Readable> {
    return Promise.reject(new Error(NOT_YET));
  }

  async has(digest: string): Promise<boolean> {
    for await (const p of this.list()) if (p.digest === digest) return true;
    return false;
  }

  async *list(): AsyncIterable<PartialBlobInfo> {
    const found = new Map<string, PartialBlobInfo>();
    for await (const o of this.bucket.list(keys.partials)) {
      const digest = digestOfPath(o.key.slice(keys.partials.length).split('/').slice(0, 2).join('/'));
      if (!digest) continue;
      const p = found.get(digest) ?? { digest, bytes: 0, touchedAt: 0 };
      p.bytes += o.size;
      p.touchedAt = Math.max(p.touchedAt, o.lastModified);
      found.set(digest, p);
    }
    yield* found.values();
  }

  async sweep(maxAgeMs: number, keep: (digest: string) => boolean = () => false, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for await (const p of this.list()) {
      if (keep(p.digest) || now - p.touchedAt <= maxAgeMs) continue;
      const doomed: string[] = [];
      for await (const o of this.bucket.list(keys.partial(p.digest))) doomed.push(o.key);
      await this.bucket.deleteMany(doomed);
      removed.push(p.digest);
    }
    return removed;
  }

  async usage(): Promise<{ bytes: number; count: number }> {
    let bytes = 0;
    let count = 0;
    for await (const p of this.list()) {
      bytes += p.bytes;
      count++;
    }
    return { bytes, count };
  }

  readState(key: string): Promise<string | undefined> {
    return this.bucket.getText(keys.transferState(key));
  }

  async writeState(key: string, text: string): Promise<void> {
    await this.bucket.put(keys.transferState(key), text);
  }
}
