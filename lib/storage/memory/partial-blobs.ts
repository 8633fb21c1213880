/**
 * Partial blobs in memory (unit tests): a buffer per blob and the ranges recorded as held. A
 * "restart" is a second open on the same instance: what was recorded comes back, as after a kill
 * -9 of the filesystem backend. A commit puts the bytes into the BlobStorage given, which checks
 * the digest again.
 */
import { Readable } from 'node:stream';
import { RegistryError } from '../../oci/errors.ts';
import { requireDigest } from '../../oci/digest.ts';
import type { ByteRange } from '../../oci/range.ts';
import { RangeSet } from '../../transfer/range-set.ts';
import type { PartialBlob, PartialBlobInfo, PartialBlobStorage, PartialScratch } from '../partial-blobs.ts';
import type { BlobStorage } from '../storage.ts';

interface Entry {
  bytes: Buffer;
  held: RangeSet;
  touchedAt: number;
}

function readInto(from: Buffer, pos: number, into: Uint8Array): number {
  if (pos >= from.length) return 0;
  return from.copy(into, 0, pos, Math.min(from.length, pos + into.length));
}

function enoent(digest: string): Error {
  return Object.assign(new Error(`ENOENT: no partial blob or blob ${digest}`), { code: 'ENOENT' });
}

class MemoryPartialBlob implements PartialBlob {
  private committed = false;

  constructor(
    readonly digest: string,
    readonly size: number,
    readonly resumed: readonly ByteRange[],
    private readonly entry: Entry,
    private readonly owner: MemoryPartialBlobStorage,
  ) {}

  async write(pos: number, bytes: Uint8Array): Promise<void> {
    if (pos + bytes.length > this.size) throw new RangeError(`write past the end of ${this.digest}: ${pos}+${bytes.length} of ${this.size}`);
    this.entry.bytes.set(bytes, pos);
    this.entry.touchedAt = Date.now();
  }

  async read(pos: number, into: Uint8Array): Promise<number> {
    return readInto(this.entry.bytes, pos, into);
  }

  async record(range: ByteRange): Promise<void> {
    this.entry.held.add(range.start, Math.min(range.end + 1, this.size));
    this.entry.touchedAt = Date.now();
  }

  async flush(): Promise<void> {}

  async resetHeld(held: readonly ByteRange[]): Promise<void> {
    this.entry.held = new RangeSet(held.map((r) => ({ start: r.start, end: r.end + 1 })));
  }

  async scratch(): Promise<PartialScratch> {
    const bytes = Buffer.alloc(this.size);
    return {
      write: async (pos, b) => {
        bytes.set(b, pos);
      },
      read: async (pos, into) => readInto(bytes, pos, into),
      close: async () => {},
    };
  }

  async commit(hashed: string): Promise<void> {
    if (hashed !== this.digest) {
      throw new RegistryError('DIGEST_INVALID', `content digest ${hashed} does not match ${this.digest}`, { expected: this.digest, actual: hashed });
    }
    await this.owner.blobs.putBytes(this.entry.bytes, this.digest);
    this.committed = true;
    this.owner.forget(this.digest, this.entry);
  }

  async close(): Promise<void> {}

  async discard(): Promise<void> {
    if (!this.committed) this.owner.forget(this.digest, this.entry);
  }
}

export class MemoryPartialBlobStorage implements PartialBlobStorage {
  private readonly entries = new Map<string, Entry>();
  private readonly state = new Map<string, string>();

  constructor(readonly blobs: BlobStorage) {}

  async open(digest: string, size: number): Promise<PartialBlob> {
    requireDigest(digest);
    let entry = this.entries.get(digest);
    // Another size is another blob as far as what is held goes: start again.
    if (entry?.bytes.length !== size) {
      entry = { bytes: Buffer.alloc(size), held: new RangeSet(), touchedAt: Date.now() };
      this.entries.set(digest, entry);
    }
    const resumed = entry.held.intervals.map((i) => ({ start: i.start, end: i.end - 1 }));
    return new MemoryPartialBlob(digest, size, resumed, entry, this);
  }

  async has(digest: string): Promise<boolean> {
    return this.entries.has(digest);
  }

  async read(digest: string, range: ByteRange): Promise<Readable> {
    const entry = this.entries.get(digest);
    if (entry) return Readable.from([Buffer.from(entry.bytes.subarray(range.start, range.end + 1))], { objectMode: false });
    const blob = await this.blobs.read(digest, range);
    if (!blob) throw enoent(digest);
    return blob;
  }

  async *list(): AsyncIterable<PartialBlobInfo> {
    for (const [digest, e] of [...this.entries]) yield { digest, bytes: e.bytes.length, touchedAt: e.touchedAt };
  }

  async sweep(maxAgeMs: number, keep: (digest: string) => boolean = () => false): Promise<string[]> {
    const removed: string[] = [];
    const now = Date.now();
    for (const [digest, e] of [...this.entries]) {
      if (keep(digest) || now - e.touchedAt <= maxAgeMs) continue;
      this.entries.delete(digest);
      removed.push(digest);
    }
    return removed;
  }

  async usage(): Promise<{ bytes: number; count: number }> {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes.length;
    return { bytes, count: this.entries.size };
  }

  async readState(key: string): Promise<string | undefined> {
    return this.state.get(key);
  }

  async writeState(key: string, text: string): Promise<void> {
    this.state.set(key, text);
  }

  /** Drops the entry of digest when it is still this one (a commit or discard of an open partial). */
  forget(digest: string, entry: Entry): void {
    if (this.entries.get(digest) === entry) this.entries.delete(digest);
  }
}
