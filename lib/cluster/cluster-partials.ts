/**
 * The partial blobs of a replica in a cluster: the backend's PartialBlobStorage (S3: pieces in
 * the shared bucket) with single flight across replicas added, so that the transfer engine needs
 * no change to be the holder of a transfer:
 *
 *   open     claims the digest (transfer-gate.ts). Holder: the backend's partial blob, wrapped so
 *            that what it records is published as the transfer's progress. Another replica holds
 *            it: TransferElsewhereError, carrying the watcher to follow it with
 *            (follow-reader.ts) instead of transferring it again.
 *   write    waits while a renewal of the lease is late, refused once the lease is lost (the
 *            engine's transfer fails; nothing more is written).
 *   record   the backend records first, then the progress follows (at most every publishMs), so
 *            the progress never claims a byte the backend does not hold where other replicas can
 *            read it (PartialBlob.sharedRanges, when the backend has them).
 *   commit   the backend commits, the progress says done, the lease is released; the progress
 *            is removed keepDoneMs later (followers have seen done by then).
 *   close    unfinished: the lease is released, a follower takes over from what is held.
 *   discard  the progress is emptied first (followers must not read what goes), then the bytes.
 *
 * A holder whose lease is lost (at close or discard, or before its commit finished) abandons the
 * backend's partial blob (PartialBlob.abandon): the replica that took the transfer over resumed
 * from the stored bytes, so this one writes and removes nothing more. Before that, the backend's
 * own writes wait while a renewal is late (PartialBlob.fence). If it had committed, the successor
 * finds the blob there and never opens the partial blob: its pieces stay until the sweep of old
 * partial blobs (transfer.partMaxAgeHours), since the successor may have written to it meanwhile.
 *
 * Ranges: the seam's are inclusive, the progress record's half-open; converted here.
 */
import type { Readable } from 'node:stream';
import type { ByteRange } from '../oci/range.ts';
import type { PartialBlob, PartialBlobInfo, PartialBlobStorage, PartialScratch } from '../storage/partial-blobs.ts';
import { RangeSet } from '../transfer/range-set.ts';
import type { HeldLease } from './lease.ts';
import type { ProgressWatcher } from './progress-watcher.ts';
import type { ProgressWriter } from './progress.ts';
import type { TransferGate } from './transfer-gate.ts';

/** Another replica holds this digest's transfer: follow it (createFollowReader with `watcher`) instead. */
export class TransferElsewhereError extends Error {
  constructor(readonly digest: string, readonly watcher: ProgressWatcher) {
    super(`${digest} is being transferred by another replica: follow it`);
    this.name = 'TransferElsewhereError';
  }
}

/** The blob was committed (by the previous holder) before this replica claimed its transfer: read it instead. */
export class BlobCommittedError extends Error {
  constructor(readonly digest: string) {
    super(`${digest} is in the store already`);
    this.name = 'BlobCommittedError';
  }
}

export class ClusterPartialBlobs implements PartialBlobStorage {
  constructor(
    private readonly inner: PartialBlobStorage,
    private readonly gate: TransferGate,
    /** Least time between two progress writes of one transfer (default 250 ms). */
    private readonly publishMs = 250,
    /** Whether the blob is in the store: asked once this replica holds the digest (BlobCommittedError then). */
    private readonly committed: (digest: string) => Promise<boolean> = () => Promise.resolve(false),
    /** How long a done progress stays after the commit (default 5 s: followers poll every second at most). */
    private readonly keepDoneMs = 5000,
  ) {}

  async open(digest: string, size: number): Promise<PartialBlob> {
    const claim = await this.gate.claim(digest);
    if (claim.role === 'follower') throw new TransferElsewhereError(digest, claim.watcher);
    let blob: PartialBlob;
    try {
      if (await this.committed(digest)) throw new BlobCommittedError(digest);
      blob = await this.inner.open(digest, size);
    } catch (err) {
      await claim.lease.release();
      throw err;
    }
    const held = new ClusterPartialBlob(blob, claim.lease, claim.progress, this.publishMs, this.keepDoneMs);
    await held.publishNow();
    return held;
  }

  has(digest: string): Promise<boolean> {
    return this.inner.has(digest);
  }

  read(digest: string, range: ByteRange): Promise<Readable> {
    return this.inner.read(digest, range);
  }

  /** The backend's, where it has one. */
  get openReader(): PartialBlobStorage['openReader'] {
    return this.inner.openReader?.bind(this.inner);
  }

  list(): AsyncIterable<PartialBlobInfo> {
    return this.inner.list();
  }

  sweep(maxAgeMs: number, keep?: (digest: string) => boolean): Promise<string[]> {
    return this.inner.sweep(maxAgeMs, keep);
  }

  usage(): Promise<{ bytes: number; count: number }> {
    return this.inner.usage();
  }

  readState(key: string): Promise<string | undefined> {
    return this.inner.readState(key);
  }

  writeState(key: string, text: string): Promise<void> {
    return this.inner.writeState(key, text);
  }
}

class ClusterPartialBlob implements PartialBlob {
  private readonly held: RangeSet;
  private timer: NodeJS.Timeout | undefined;
  private lastPublish = 0;
  private publishing: Promise<void> = Promise.resolve();
  /** A progress write failed for good (lease lost, fenced out): every later call fails with it. */
  private failure: unknown;
  private finished = false;
  /** The lease was lost before the transfer was done with the store: another replica owns the partial blob. */
  private lostLease = false;
  /** What the transfer released to its readers: published for the followers' readers. */
  private released = 0;

  constructor(
    private readonly inner: PartialBlob,
    private readonly lease: HeldLease,
    private readonly progress: ProgressWriter,
    private readonly publishMs: number,
    private readonly keepDoneMs: number,
  ) {
    this.held = new RangeSet(inner.resumed.map((r) => ({ start: r.start, end: r.end + 1 })));
    // The backend's own writes (its background write-outs too) go out only while the lease is valid.
    inner.fence?.(() => lease.untilValid());
  }

  get digest(): string {
    return this.inner.digest;
  }

  get size(): number {
    return this.inner.size;
  }

  get resumed(): readonly ByteRange[] {
    return this.inner.resumed;
  }

  read(pos: number, into: Uint8Array): Promise<number> {
    return this.inner.read(pos, into);
  }

  async write(pos: number, bytes: Uint8Array): Promise<void> {
    await this.ready();
    await this.inner.write(pos, bytes);
  }

  async record(range: ByteRange): Promise<void> {
    await this.ready();
    await this.inner.record(range);
    this.held.add(range.start, range.end + 1);
    this.schedulePublish();
  }

  async flush(): Promise<void> {
    await this.inner.flush();
    await this.publishNow();
  }

  async resetHeld(held: readonly ByteRange[]): Promise<void> {
    await this.ready();
    await this.inner.resetHeld(held);
    this.held.clear();
    for (const r of held) this.held.add(r.start, r.end + 1);
    await this.publishNow();
  }

  release(bytes: number): void {
    if (bytes === this.released) return;
    this.released = bytes;
    if (!this.finished) this.schedulePublish();
  }

  scratch(): Promise<PartialScratch> {
    return this.inner.scratch();
  }

  async commit(hashed: string): Promise<void> {
    await this.ready();
    await this.inner.commit(hashed);
    // Lost while committing (a late renewal's verdict decides): another replica may be writing the partial blob; close leaves it be.
    this.lostLease ||= !(await this.leaseHolds());
    this.finished = true;
    this.held.clear();
    this.held.add(0, this.size);
    await this.publishNow(true).catch(() => {});
    await this.lease.release();
    // Best effort: a record left behind (this process gone meanwhile) is swept (sweepProgress).
    setTimeout(() => void this.progress.remove().catch(() => {}), this.keepDoneMs).unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    if (!this.finished) await this.publishNow().catch(() => {});
    await ((await this.ours()) ? this.inner.close() : this.abandonInner());
    await this.lease.release();
  }

  async discard(): Promise<void> {
    clearTimeout(this.timer);
    this.held.clear();
    await this.publishNow().catch(() => {});
    await ((await this.ours()) ? this.inner.discard() : this.abandonInner());
    await this.lease.release();
  }

  /**
   * Whether this replica still holds the transfer (a finished one: whether it held it to the end
   * of its commit), by the same verdict as commit's: a renewal late now is waited for, not taken
   * for a loss.
   */
  private async ours(): Promise<boolean> {
    if (!this.finished && !this.lostLease) this.lostLease = !(await this.leaseHolds());
    return !this.lostLease;
  }

  /** The lease's verdict: valid now, or once a late renewal landed; false once it is lost. */
  private leaseHolds(): Promise<boolean> {
    return this.lease.untilValid().then(() => true, () => false);
  }

  private abandonInner(): Promise<void> {
    return this.inner.abandon ? this.inner.abandon() : this.inner.close();
  }

  /** @internal Publishes the ranges held now and waits for it. */
  publishNow(done = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastPublish = performance.now();
    // Only what other replicas can read: the backend may hold recorded bytes where they cannot (S3: in memory).
    const shared = done || !this.inner.sharedRanges ? this.held.intervals : this.inner.sharedRanges().map((r) => ({ start: r.start, end: r.end + 1 }));
    const state = { size: this.size, ranges: [...shared], released: this.released, done };
    this.publishing = this.publishing.then(() => this.progress.publish(state)).catch((err: unknown) => {
      this.failure ??= err;
      throw err;
    });
    return this.publishing;
  }

  private schedulePublish(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastPublish + this.publishMs - performance.now());
    this.timer = setTimeout(() => void this.publishNow().catch(() => {}), wait);
    this.timer.unref();
  }

  /** Resolves when this replica may write: at once, or once a late renewal of the lease landed; rejects once it is lost. */
  private async ready(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.lease.valid) return;
    await this.lease.untilValid();
    if (this.failure !== undefined) throw this.failure;
  }
}
