/**
 * Partial blobs: pull-through transfers in progress. A partial blob is the bytes of one blob
 * arriving out of order (positional writes), the ranges of it that are held (persisted as they
 * are recorded, so the next process resumes them), and, once its digest matched, a commit that
 * makes it a blob of BlobStorage. No path, descriptor or directory crosses this interface: the
 * filesystem backend keeps `<data>/transfers/sha256/<hex>.part` + `.journal`
 * (lib/storage/partial-blobs-fs.ts), the memory one buffers (lib/storage/memory/partial-blobs.ts),
 * an S3 one may keep parts and a record of them.
 *
 * Ranges are inclusive ({ start, end }, as storage.ts). One writer per digest at a time: the
 * caller (lib/mirror/transfers.ts, single flight per digest) opens a digest at most once.
 *
 * The suite every backend must pass is test/storage/partial-blobs.suite.ts.
 */
import type { Readable } from 'node:stream';
import type { ByteRange } from '../oci/range.ts';

/** Positional reads of bytes a caller knows are held. */
export interface PositionalReader {
  /** Reads up to into.length bytes at pos into `into`; resolves with the count (0 past the end of what is stored). */
  read(pos: number, into: Uint8Array): Promise<number>;
}

/** Positional reads of a blob's stored bytes, until closed (PartialBlobStorage.openReader). */
export interface PartialReader extends PositionalReader {
  /** Several buffers filled in order by one read, where the backend can (a file's readv). */
  readv?(views: Buffer[], pos: number): Promise<number>;
  close(): Promise<void>;
}

/** A scratch area beside a partial blob (a second copy of some pieces during a repair): removed by close. */
export interface PartialScratch extends PositionalReader {
  write(pos: number, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** One partial blob, open for writing. */
export interface PartialBlob extends PositionalReader {
  readonly digest: string;
  readonly size: number;
  /**
   * What open found held from an earlier run, sorted and merged. Crash-safe: after a kill -9 it
   * never claims bytes that are not stored (only bytes in flight are lost); after a power loss,
   * only what flush() made durable.
   */
  readonly resumed: readonly ByteRange[];
  /** Stores bytes at pos (the range need not be recorded yet). */
  write(pos: number, bytes: Uint8Array): Promise<void>;
  /** Records a range whose bytes were written as held; what a restart resumes. Cheap: one append. */
  record(range: ByteRange): Promise<void>;
  /**
   * The recorded ranges another process sharing the store can read now through `read`, where that
   * lags what is recorded (S3: the bytes in pieces in the bucket, not those still gathering in
   * memory). Absent: every recorded range (the cluster publishes these: lib/cluster/cluster-partials.ts).
   */
  sharedRanges?(): readonly ByteRange[];
  /**
   * The transfer's readers may now have bytes [0, bytes) (Transfer.releasedBytes: verified).
   * Storage that other replicas read from publishes it for their readers (cluster-partials.ts).
   */
  release?(bytes: number): void;
  /** Resolves once every recorded range is durable, power loss included (the backend also does it now and then). */
  flush(): Promise<void>;
  /** Replaces what is recorded as held by exactly `held` (a repair forgot ranges that were wrong). */
  resetHeld(held: readonly ByteRange[]): Promise<void>;
  /** A scratch area of the same size (repair by agreement of two copies). */
  scratch(): Promise<PartialScratch>;
  /**
   * Makes the bytes the blob `digest` of BlobStorage: durable first, then visible at once
   * (atomically). `hashed` is the digest the caller computed over every byte of the partial blob;
   * anything else is refused (DIGEST_INVALID) and nothing becomes visible. Reads of the partial
   * (read(), PartialBlobStorage.read) keep working on the committed blob.
   */
  commit(hashed: string): Promise<void>;
  /** Releases the partial blob. Before a commit, what it holds stays for a later open; after, its record goes. */
  close(): Promise<void>;
  /** Closes and removes the partial blob (wrong content). */
  discard(): Promise<void>;
  /**
   * Lets go without writing or removing anything more: another writer owns the partial blob now
   * (the cluster's lease was lost, lib/cluster/cluster-partials.ts) and reads what is stored.
   * Absent: close() instead (a store only one process writes).
   */
  abandon?(): Promise<void>;
  /**
   * Every write to the shared store from now on (the background write-outs too) waits for
   * `until` first, and fails with its rejection: a cluster holder writes only while its lease is
   * valid (a renewal late past its deadline holds them; a lease lost fails them). Absent: a store
   * only one process writes.
   */
  fence?(until: () => Promise<void>): void;
}

export interface PartialBlobInfo {
  digest: string;
  /** Bytes stored for it (the filesystem's part file length). */
  bytes: number;
  /** Last write (ms since the epoch). */
  touchedAt: number;
}

/** Small state kept beside the partial blobs (what each upstream's link learned). */
export interface TransferStateStore {
  /** The text last written under key ([a-z0-9-]+), undefined when none. */
  readState(key: string): Promise<string | undefined>;
  /** Writes atomically: a reader sees the old text or the new one. */
  writeState(key: string, text: string): Promise<void>;
}

export interface PartialBlobStorage extends TransferStateStore {
  /** The partial blob of digest (size bytes): resumed when one is held, else new and empty. */
  open(digest: string, size: number): Promise<PartialBlob>;
  /** Whether a partial blob of digest is held (a resumable transfer). */
  has(digest: string): Promise<boolean>;
  /**
   * Bytes of range of the partial blob of digest as a stream, or of the blob it was committed as:
   * a reader that started on the partial finishes on the blob. The caller reads only what is held.
   * Rejects when neither exists.
   */
  read(digest: string, range: ByteRange): Promise<Readable>;
  /**
   * The same bytes as read, into the caller's buffers: positional reads of the partial blob of
   * digest, or of the blob it was committed as (one opened on the partial keeps reading after the
   * commit), until closed. A sender reads into pooled slabs with it instead of taking a fresh
   * buffer per read from a stream (prefix-reader.ts). The caller reads only what is held. Rejects
   * when neither exists. Absent: read is the way.
   */
  openReader?(digest: string): Promise<PartialReader>;
  /** Every partial blob held; ones added or removed meanwhile may or may not appear. */
  list(): AsyncIterable<PartialBlobInfo>;
  /** Removes partial blobs not written for maxAgeMs, except those keep spares; returns the digests removed. */
  sweep(maxAgeMs: number, keep?: (digest: string) => boolean): Promise<string[]>;
  /** Bytes held by partial blobs and how many there are (the store-size metric). */
  usage(): Promise<{ bytes: number; count: number }>;
}

/** PartialBlobStorage.usage for a backend whose list() already carries each partial's bytes. */
export async function usageOf(partials: AsyncIterable<PartialBlobInfo>): Promise<{ bytes: number; count: number }> {
  let bytes = 0;
  let count = 0;
  for await (const p of partials) {
    bytes += p.bytes;
    count++;
  }
  return { bytes, count };
}
