/**
 * The S3 backend's BlobStorage: a blob is the object blobs/<alg>/<hex>, written only once its
 * bytes matched the digest (a single put after the check, or a multipart upload completed after
 * it), so no replica ever reads one unverified. Reads are ranged GETs streamed as they arrive.
 * touchedAt is the later of the blob's LastModified and its touch record's time (an empty object
 * rewritten on each touch, its time in ms in its metadata: S3 cannot change a LastModified in
 * place, and HEAD gives it in whole seconds). How often a blob is touched is the caller's
 * decision (CacheAccounting's and RelayBlobCache's touchIntervalMs), as on every store.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { RegistryError } from '../../oci/errors.ts';
import type { ByteRange } from '../../oci/range.ts';
import type { BlobInfo, BlobStorage, BlobStream, IngestExpectation, StoredBlob } from '../storage.ts';
import { ContentCheck, checkedDigestOf } from '../content-check.ts';
import { assemble } from './assemble.ts';
import type { S3Bucket } from './bucket.ts';
import { digestOfPath, keys } from './keys.ts';
import { objectStream } from './object-stream.ts';
import { writeObject } from './object-writer.ts';

/** The touch record's metadata key: when it was touched, ms since the epoch. */
const TOUCHED_AT = 'touched-at';

function touchTime(touch: { lastModified: number; metadata?: Record<string, string> }): number {
  const ms = Number(touch.metadata?.[TOUCHED_AT]);
  return Number.isFinite(ms) && ms > 0 ? ms : touch.lastModified;
}

/** Signs a GET of the object key (relative to the bucket's prefix) for a client to use (presign.ts). */
export type SignGet = (key: string) => Promise<string>;

export class S3BlobStorage implements BlobStorage {
  readonly redirectUrl?: (digest: string) => Promise<string>;

  constructor(private readonly bucket: S3Bucket, signGet?: SignGet) {
    if (signGet) this.redirectUrl = (digest) => signGet(keys.blob(digest));
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    const [blob, touch] = await Promise.all([this.bucket.head(keys.blob(digest)), this.bucket.head(keys.touch(digest))]);
    if (!blob) return undefined;
    return { digest, size: blob.size, touchedAt: Math.max(blob.lastModified, touch ? touchTime(touch) : 0) };
  }

  async size(digest: string): Promise<number | undefined> {
    return (await this.bucket.head(keys.blob(digest)))?.size;
  }

  async has(digest: string): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  async read(digest: string, range?: ByteRange): Promise<BlobStream | undefined> {
    // An empty range (an empty blob's whole) is no valid HTTP Range: nothing to fetch.
    if (range && range.end < range.start) return (await this.has(digest)) ? Readable.from([]) : undefined;
    const got = await this.bucket.get(keys.blob(digest), range);
    return got ? objectStream(got.body) : undefined;
  }

  async readBytes(digest: string): Promise<Buffer> {
    const bytes = await this.bucket.getBytes(keys.blob(digest));
    if (!bytes) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
    return bytes;
  }

  /**
   * Hashes source while it streams into the store; the blob appears only if digest and size
   * matched. With the digest known beforehand the upload targets the blob's own key; without, a
   * content longer than one part goes to tmp/ and is copied into place once its digest is known.
   */
  async ingest(source: Readable | AsyncIterable<Buffer>, expect: IngestExpectation = {}): Promise<StoredBlob> {
    const check = new ContentCheck(expect);
    const target = expect.digest !== undefined ? keys.blob(expect.digest) : keys.temp(randomUUID());
    const written = await writeObject(this.bucket, source, {
      key: target,
      tap: (chunk) => check.update(chunk),
      seal: () => keys.blob(check.verify()),
    });
    const digest = check.digest as string;
    if (written.key !== keys.blob(digest)) {
      try {
        await assemble(this.bucket, [{ key: written.key, size: written.size }], keys.blob(digest));
      } finally {
        await this.bucket.delete(written.key);
      }
    }
    return { digest, size: written.size };
  }

  async putBytes(bytes: Buffer, expectDigest?: string): Promise<string> {
    const digest = checkedDigestOf(bytes, expectDigest);
    if (!(await this.has(digest))) await this.bucket.put(keys.blob(digest), bytes);
    return digest;
  }

  async delete(digest: string): Promise<boolean> {
    if (!(await this.has(digest))) return false;
    await this.bucket.deleteMany([keys.blob(digest), keys.touch(digest)]);
    return true;
  }

  /** One PUT: the caller has just found the blob held (a record left by a race with its delete is ignored, storage.ts). */
  async touch(digest: string): Promise<void> {
    const now = Date.now();
    try {
      await this.bucket.put(keys.touch(digest), '', { metadata: { [TOUCHED_AT]: String(now) } });
    } catch {
      // best effort: the LRU order is a hint
    }
  }

  /** Blobs in key order, each with its touch record merged in (two listings walked together). */
  async *list(): AsyncGenerator<BlobInfo> {
    const touches = this.bucket.list(keys.touched)[Symbol.asyncIterator]();
    let touch = await touches.next();
    for await (const blob of this.bucket.list(keys.blobs)) {
      const tail = blob.key.slice(keys.blobs.length);
      const digest = digestOfPath(tail);
      if (digest === undefined) continue;
      while (!touch.done && touch.value.key.slice(keys.touched.length) < tail) touch = await touches.next();
      const touchedAt = !touch.done && touch.value.key.slice(keys.touched.length) === tail ? touch.value.lastModified : 0;
      yield { digest, size: blob.size, touchedAt: Math.max(blob.lastModified, touchedAt) };
    }
  }

  /**
   * Removes abandoned ingests: multipart uploads of blobs and tmp/ objects and uploads older than
   * maxAgeMs; and touch records older than that whose blob is gone (a touch that raced the blob's
   * delete, by eviction or gc on any replica: nothing else ever removes them).
   */
  async sweep(maxAgeMs: number): Promise<number> {
    const before = Date.now() - maxAgeMs;
    let removed = 0;
    for (const prefix of [keys.blobs, keys.tmp]) {
      for await (const upload of this.bucket.listMultipart(prefix)) {
        if (upload.initiated >= before) continue;
        await this.bucket.abortMultipart(upload.key, upload.uploadId);
        removed++;
      }
    }
    const stale: string[] = [];
    for await (const o of this.bucket.list(keys.tmp)) if (o.lastModified < before) stale.push(o.key);
    for await (const key of this.orphanTouches(before)) stale.push(key);
    await this.bucket.deleteMany(stale);
    return removed + stale.length;
  }

  /** Touch records last written before `before` whose blob is not held (the two listings walked together, both in key order). */
  private async *orphanTouches(before: number): AsyncGenerator<string> {
    const blobs = this.bucket.list(keys.blobs)[Symbol.asyncIterator]();
    let blob = await blobs.next();
    for await (const touch of this.bucket.list(keys.touched)) {
      const tail = touch.key.slice(keys.touched.length);
      while (!blob.done && blob.value.key.slice(keys.blobs.length) < tail) blob = await blobs.next();
      const held = !blob.done && blob.value.key.slice(keys.blobs.length) === tail;
      if (!held && touch.lastModified < before) yield touch.key;
    }
  }

  async readSidecar(digest: string, key: string): Promise<string | undefined> {
    return this.bucket.getText(keys.sidecar(digest, key));
  }

  async writeSidecar(digest: string, key: string, text: string): Promise<void> {
    await this.bucket.put(keys.sidecar(digest, key), text);
  }

  async deleteSidecars(digest: string): Promise<void> {
    const found: string[] = [];
    for await (const o of this.bucket.list(keys.sidecars(digest))) found.push(o.key);
    await this.bucket.deleteMany(found);
  }
}
