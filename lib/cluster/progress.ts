/**
 * A transfer's progress in the bucket, `progress/<digest>`: which byte ranges of the blob are there,
 * so every replica can serve them while the transfer runs, and the replica that takes the transfer over
 * from a dead holder continues from them instead of fetching them again.
 *
 *   { "v": 1, "digest": "sha256:...", "size": 123, "holder": "...", "seq": 7,
 *     "ranges": [[0, 10485760], ...], "done": false, "parts": <backend's own> }
 *
 * `ranges` are half-open [start, end) and hold only bytes already readable from the bucket.
 * `parts` is opaque here: what the storage backend needs to read those ranges and to continue the
 * transfer (its multipart upload id, part numbers and etags). `done`: the blob is committed; readers
 * read it as a blob from now on.
 *
 * Only the transfer's lease holder writes, and every write is a compare-and-swap on the etag it last
 * wrote (or read, when it took the transfer over): a holder that lost its lease without noticing (a
 * paused process) cannot overwrite its successor's progress (TransferFencedError).
 *
 * Removal: the holder removes the record a few seconds after `done` (followers poll every second at
 * most, so they have seen it; one that has not finds the lease released, claims, and reads the
 * committed blob). What a dead holder left is swept (sweepProgress).
 */
import { RangeSet, type Interval } from '../transfer/range-set.ts';
import type { HeldLease, Leases } from './lease.ts';
import type { ClusterObjects } from './objects.ts';

export interface TransferProgress<Parts = unknown> {
  digest: string;
  size: number;
  /** The lease holder that wrote it. */
  holder: string;
  /** Bumped by every write. */
  seq: number;
  /** Readable from the bucket now: sorted, merged, half-open. */
  ranges: Interval[];
  /**
   * Bytes [0, released) its holder verified: all a follower may serve before done (a transfer
   * without piece digests verifies nothing before its digest matched). 0 in a record without it.
   */
  released: number;
  done: boolean;
  parts?: Parts;
}

/** The transfer's progress was written by someone else since this writer last wrote: it no longer holds the transfer. */
export class TransferFencedError extends Error {
  constructor(readonly digest: string) {
    super(`transfer of ${digest}: its progress was written by another replica (this one lost the transfer's lease)`);
    this.name = 'TransferFencedError';
  }
}

/** The lease of a transfer's digest. */
export const transferLeaseName = (digest: string): string => `transfer-${digest}`;
const PREFIX = 'progress/';
const key = (digest: string): string => `${PREFIX}${digest}`;

export function parseProgress<Parts>(text: string): TransferProgress<Parts> | undefined {
  try {
    const p = JSON.parse(text) as { digest?: unknown; size?: unknown; holder?: unknown; seq?: unknown; ranges?: unknown; released?: unknown; done?: unknown; parts?: Parts };
    if (typeof p.digest !== 'string' || typeof p.size !== 'number' || !Array.isArray(p.ranges)) return undefined;
    const set = new RangeSet();
    for (const r of p.ranges as unknown[]) {
      if (Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number') set.add(Math.max(0, r[0]), Math.min(p.size, r[1]));
    }
    return {
      digest: p.digest,
      size: p.size,
      holder: typeof p.holder === 'string' ? p.holder : '',
      seq: typeof p.seq === 'number' ? p.seq : 0,
      ranges: [...set.intervals],
      released: typeof p.released === 'number' ? Math.max(0, Math.min(p.size, p.released)) : 0,
      done: p.done === true,
      ...(p.parts === undefined ? {} : { parts: p.parts }),
    };
  } catch {
    return undefined;
  }
}

function serialize(p: TransferProgress): string {
  return JSON.stringify({ v: 1, ...p, ranges: p.ranges.map((r) => [r.start, r.end]) });
}

/** Reads a transfer's progress (any replica). */
export async function readProgress<Parts = unknown>(
  objects: ClusterObjects,
  digest: string,
  signal?: AbortSignal,
): Promise<{ progress: TransferProgress<Parts>; etag: string } | undefined> {
  const obj = await objects.get(key(digest), signal);
  if (!obj) return undefined;
  const progress = parseProgress<Parts>(obj.body.toString('utf8'));
  return progress && progress.digest === digest ? { progress, etag: obj.etag } : undefined;
}

/** Removes a transfer's progress (nobody finishes or follows it: see sweepProgress). */
export function removeProgress(objects: ClusterObjects, digest: string): Promise<void> {
  return objects.delete(key(digest));
}

export interface ProgressSweepOptions {
  /** A done record older than this (by its LastModified) was left by a holder that died before removing it. */
  doneAgeMs: number;
  /** Whether the transfer's bytes are still in the bucket for a new holder to continue from. */
  resumable(digest: string): Promise<boolean>;
  now?: () => number;
}

/**
 * Removes the progress records nobody will finish or read: those whose lease nobody holds and that
 * are done (older than doneAgeMs) or whose bytes are gone. A record under a held lease is never
 * removed: its holder writes it. RGW has no conditional delete: a transfer claimed between the look
 * at its lease and the delete loses its record and fails with TransferFencedError (its client's
 * retry starts it again). The digests removed.
 */
export async function sweepProgress(objects: ClusterObjects, leases: Leases, opts: ProgressSweepOptions): Promise<string[]> {
  const now = opts.now ?? Date.now;
  const removed: string[] = [];
  for (const listed of await objects.list(PREFIX)) {
    const digest = listed.key.slice(PREFIX.length);
    const found = await readProgress(objects, digest);
    if (!found || found.etag !== listed.etag) continue;
    if ((await leases.inspect(transferLeaseName(digest))).state === 'held') continue;
    const gone = found.progress.done ? now() - listed.lastModified >= opts.doneAgeMs : !(await opts.resumable(digest));
    if (!gone) continue;
    await removeProgress(objects, digest);
    removed.push(digest);
  }
  return removed;
}

/**
 * The lease holder's side: publishes the transfer's progress as it grows. Publications coalesce: one
 * write at a time, the latest state wins, so a fast transfer does not queue a write per part.
 */
export class ProgressWriter<Parts = unknown> {
  private etag: string | undefined;
  private seq: number;
  private pending: TransferProgress<Parts> | undefined;
  private writing: Promise<void> | undefined;

  private constructor(
    private readonly objects: ClusterObjects,
    private readonly lease: HeldLease,
    readonly digest: string,
    /** What the bucket held when this holder began: continue from it. */
    readonly previous: TransferProgress<Parts> | undefined,
    etag: string | undefined,
  ) {
    this.etag = etag;
    this.seq = previous?.seq ?? 0;
  }

  /** Begins writing a transfer's progress under its lease, after reading what an earlier holder left. */
  static async open<Parts = unknown>(objects: ClusterObjects, lease: HeldLease, digest: string): Promise<ProgressWriter<Parts>> {
    const found = await readProgress<Parts>(objects, digest, lease.signal);
    return new ProgressWriter<Parts>(objects, lease, digest, found?.progress, found?.etag);
  }

  /** After done: removes the progress unless another holder wrote it since (a transfer of the digest begun anew). */
  async remove(): Promise<void> {
    await this.writing?.catch(() => {});
    const found = await this.objects.get(key(this.digest));
    if (found !== undefined && found.etag === this.etag) await removeProgress(this.objects, this.digest);
  }

  /**
   * Publishes this state (resolves once it, or a later one, is in the bucket; held back while a
   * renewal of the lease is late). Rejects with the lease's LeaseLostError once the lease is lost,
   * with TransferFencedError when another replica wrote the progress meanwhile.
   */
  publish(state: { size: number; ranges: readonly Interval[]; released?: number; done?: boolean; parts?: Parts }): Promise<void> {
    this.pending = {
      digest: this.digest,
      size: state.size,
      holder: this.lease.holder,
      seq: 0,
      ranges: [...new RangeSet(state.ranges).intervals],
      released: state.done ? state.size : (state.released ?? 0),
      done: state.done ?? false,
      ...(state.parts === undefined ? {} : { parts: state.parts }),
    };
    return this.flush();
  }

  private flush(): Promise<void> {
    this.writing ??= this.writeLoop().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async writeLoop(): Promise<void> {
    while (this.pending) {
      const next = this.pending;
      this.pending = undefined;
      // A renewal merely late holds the write back; a lost lease fails it (LeaseLostError).
      if (!this.lease.valid) await this.lease.untilValid();
      next.seq = ++this.seq;
      const etag = await this.objects.put(key(this.digest), serialize(next), this.etag === undefined ? { ifAbsent: true } : { ifMatch: this.etag });
      if (etag === undefined) throw new TransferFencedError(this.digest);
      this.etag = etag;
    }
  }
}
