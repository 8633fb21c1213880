/**
 * The memory backend's BlobStorage, for unit tests: a blob is a Buffer in a map, added only once
 * its digest matched. Ingest gathers the source in memory first (tests store small blobs).
 */
import { Readable } from 'node:stream';
import { RegistryError } from '../../oci/errors.ts';
import { requireDigest } from '../../oci/digest.ts';
import type { ByteRange } from '../../oci/range.ts';
import { requireSidecarKey, type BlobInfo, type BlobStorage, type BlobStream, type IngestExpectation, type StoredBlob } from '../storage.ts';
import { ContentCheck } from '../content-check.ts';

interface Held {
  bytes: Buffer;
  touchedAt: number;
}

export class MemoryBlobStorage implements BlobStorage {
  private readonly held = new Map<string, Held>();
  private readonly sidecars = new Map<string, Map<string, string>>();

  constructor(private readonly now: () => number = Date.now) {}

  async stat(digest: string): Promise<BlobInfo | undefined> {
    requireDigest(digest);
    const h = this.held.get(digest);
    return h && { digest, size: h.bytes.length, touchedAt: h.touchedAt };
  }

  async size(digest: string): Promise<number | undefined> {
    return this.held.get(requireDigest(digest).digest)?.bytes.length;
  }

  async has(digest: string): Promise<boolean> {
    return this.held.has(requireDigest(digest).digest);
  }

  async read(digest: string, range?: ByteRange): Promise<BlobStream | undefined> {
    const h = this.held.get(requireDigest(digest).digest);
    if (!h) return undefined;
    const { start, end } = range ?? { start: 0, end: h.bytes.length - 1 };
    if (end >= h.bytes.length) throw new RangeError(`range ${start}-${end} is past the end of ${digest} (${h.bytes.length} bytes)`);
    return Readable.from(end < start ? [] : [h.bytes.subarray(start, end + 1)]);
  }

  async readBytes(digest: string): Promise<Buffer> {
    const h = this.held.get(requireDigest(digest).digest);
    if (!h) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
    return Buffer.from(h.bytes);
  }

  async ingest(source: Readable | AsyncIterable<Buffer>, expect: IngestExpectation = {}): Promise<StoredBlob> {
    const check = new ContentCheck(expect);
    const parts: Buffer[] = [];
    for await (const chunk of source as AsyncIterable<Buffer>) {
      check.update(chunk);
      parts.push(Buffer.from(chunk));
    }
    const digest = check.verify();
    this.commit(digest, Buffer.concat(parts));
    return { digest, size: check.size };
  }

  async putBytes(bytes: Buffer, expectDigest?: string): Promise<string> {
    return (await this.ingest(Readable.from([bytes]), expectDigest === undefined ? {} : { digest: expectDigest })).digest;
  }

  async delete(digest: string): Promise<boolean> {
    return this.held.delete(requireDigest(digest).digest);
  }

  async touch(digest: string): Promise<void> {
    const h = this.held.get(digest);
    if (h) h.touchedAt = this.now();
  }

  async *list(): AsyncGenerator<BlobInfo> {
    for (const [digest, h] of [...this.held]) yield { digest, size: h.bytes.length, touchedAt: h.touchedAt };
  }

  /** Nothing is ever abandoned: an ingest holds its bytes in its own variables. */
  async sweep(): Promise<number> {
    return 0;
  }

  async readSidecar(digest: string, key: string): Promise<string | undefined> {
    return this.sidecars.get(requireDigest(digest).digest)?.get(requireSidecarKey(key));
  }

  async writeSidecar(digest: string, key: string, text: string): Promise<void> {
    const d = requireDigest(digest).digest;
    let records = this.sidecars.get(d);
    if (!records) this.sidecars.set(d, (records = new Map()));
    records.set(requireSidecarKey(key), text);
  }

  async deleteSidecars(digest: string): Promise<void> {
    this.sidecars.delete(requireDigest(digest).digest);
  }

  /** For tests: puts a blob's touchedAt at `at` (ageing it). */
  setTouchedAt(digest: string, at: number): void {
    const h = this.held.get(digest);
    if (h) h.touchedAt = at;
  }

  /** Adds verified bytes (a completed upload too); a blob already held is kept as it is. */
  commit(digest: string, bytes: Buffer): void {
    if (!this.held.has(digest)) this.held.set(digest, { bytes, touchedAt: this.now() });
  }
}
