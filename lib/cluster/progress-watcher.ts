/**
 * A replica that does not hold a transfer follows it through the bucket: it polls the transfer's progress
 * and serves its clients the ranges already there as they grow. Polling is quick while the transfer
 * moves (minPollMs) and slows down while it does not (up to maxPollMs), so a replica following a
 * dozen transfers of a slow link costs RGW a few small GETs a second. Only when the progress has not
 * moved for a while does the watcher look at the transfer's lease: a holder that renews its lease but
 * makes no progress is waiting on the link, one whose lease expired is dead, and the transfer is
 * orphaned (TransferOrphanedError): the caller takes the lease and continues the transfer itself.
 *
 * Why poll the bucket rather than stream from the holder: the bucket is where the bytes are going
 * anyway and every replica reads it at RGW's speed; streaming from the holder would need replicas
 * to address and authenticate each other, and a holder's death would cut those streams at the very
 * moment the takeover has to happen. The price is latency: a byte is served by a follower one
 * part upload plus one poll after the holder received it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Leases } from './lease.ts';
import type { ClusterObjects } from './objects.ts';
import { transferLeaseName, readProgress, type TransferProgress } from './progress.ts';

/** The transfer's holder died (its lease expired or was released unfinished): take the lease and continue the transfer. */
export class TransferOrphanedError extends Error {
  constructor(readonly digest: string, readonly progress: TransferProgress | undefined) {
    super(`transfer of ${digest}: its holder stopped (lease ${transferLeaseName(digest)} expired or released before the transfer was done)`);
    this.name = 'TransferOrphanedError';
  }
}

export interface ProgressWatcherOptions {
  /** Poll interval while the progress moves (default 200 ms). */
  minPollMs?: number;
  /** Poll interval it backs off to while nothing moves (default 1000 ms). */
  maxPollMs?: number;
  /** How long without movement before the lease is looked at (default 1000 ms). */
  checkLeaseAfterMs?: number;
  /**
   * How often the lease is glanced at while the progress moves (default 1000 ms): an observer
   * counts a holder's ttl from its first sight of the holder's last renewal (lease.ts), so a
   * follower that looks only once the progress stopped takes over a dead holder's transfer a ttl
   * after that, not a ttl after the renewal (1-2 s later).
   */
  leaseEveryMs?: number;
  /** The monotonic clock the intervals above are measured on, in ms (default performance.now; tests drive their own). */
  now?: () => number;
  /** Waits ms between polls (default a timer; tests drive their own clock with it). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Past a lease's expiry by this much when it is looked at again (a timer may fire a little early). */
const EXPIRY_SLACK_MS = 5;

export class ProgressWatcher<Parts = unknown> {
  private latestEtag: string | undefined;
  private latestProgress: TransferProgress<Parts> | undefined;
  private readonly now: () => number;
  private movedAt: number;
  private pollMs: number;
  private readonly minPollMs: number;
  private readonly maxPollMs: number;
  private readonly checkLeaseAfterMs: number;
  private readonly leaseEveryMs: number;
  private leaseLookedAt = -Infinity;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(
    private readonly objects: ClusterObjects,
    private readonly leases: Leases,
    readonly digest: string,
    opts: ProgressWatcherOptions = {},
  ) {
    this.minPollMs = opts.minPollMs ?? 200;
    this.maxPollMs = opts.maxPollMs ?? 1000;
    this.checkLeaseAfterMs = opts.checkLeaseAfterMs ?? 1000;
    this.leaseEveryMs = opts.leaseEveryMs ?? 1000;
    this.now = opts.now ?? (() => performance.now());
    this.sleep = opts.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }));
    this.movedAt = this.now();
    this.pollMs = this.minPollMs;
  }

  /** The progress last read. */
  get latest(): TransferProgress<Parts> | undefined {
    return this.latestProgress;
  }

  /**
   * Resolves with the progress once byte `offset` is readable from the bucket (or the transfer is
   * done); the covered run from offset ends at `availableEnd(progress, offset)`. Rejects with
   * TransferOrphanedError when the holder is gone, and with signal's reason when it aborts.
   */
  async until(offset: number, signal?: AbortSignal): Promise<TransferProgress<Parts>> {
    for (;;) {
      signal?.throwIfAborted();
      const p = await this.poll(signal);
      if (p && (p.done || availableEnd(p, offset) > offset)) {
        this.glanceAtLease();
        return p;
      }
      let wait = this.pollMs;
      if (this.now() - this.movedAt >= this.checkLeaseAfterMs) {
        this.leaseLookedAt = this.now();
        const lease = await this.leases.inspect(transferLeaseName(this.digest), signal);
        if (lease.state !== 'held') {
          // Read once more: the holder may have finished between the two reads.
          const last = await this.poll(signal);
          if (last && (last.done || availableEnd(last, offset) > offset)) return last;
          throw new TransferOrphanedError(this.digest, last);
        }
        // Looked at again the moment it would expire, not up to a poll later: a dead holder's
        // transfer is taken over as soon as its ttl allows (on average half of maxPollMs sooner).
        if (lease.expiresInMs !== undefined) wait = Math.min(wait, lease.expiresInMs + EXPIRY_SLACK_MS);
      }
      this.glanceAtLease();
      await this.sleep(wait, signal);
      this.pollMs = Math.min(this.maxPollMs, this.pollMs * 1.5);
    }
  }

  /** Looks at the lease in the background, at most every leaseEveryMs: the sighting of its etag is what its expiry is judged from. */
  private glanceAtLease(): void {
    const t = this.now();
    if (t - this.leaseLookedAt < this.leaseEveryMs) return;
    this.leaseLookedAt = t;
    void this.leases.inspect(transferLeaseName(this.digest)).catch(() => {});
  }

  /** Reads the progress; a change of etag is movement. */
  private async poll(signal?: AbortSignal): Promise<TransferProgress<Parts> | undefined> {
    const found = await readProgress<Parts>(this.objects, this.digest, signal);
    if (found && found.etag !== this.latestEtag) {
      this.latestEtag = found.etag;
      this.latestProgress = found.progress;
      this.movedAt = this.now();
      this.pollMs = this.minPollMs;
    }
    return this.latestProgress;
  }
}

/**
 * End (exclusive) of the run of progress a follower may serve from offset; offset itself when it
 * has to wait. Only bytes that are in the bucket and that the holder released (verified: checked
 * pieces, or nothing before the digest matched when no piece digest checks them) are served, and
 * the blob's last byte only once the transfer is done: as on a lone mirror, a client never
 * receives a byte that was not checked, nor a whole blob whose digest was not. Pure.
 */
export function availableEnd(progress: TransferProgress, offset: number): number {
  if (progress.done) return progress.size;
  const limit = Math.min(progress.released, progress.size - 1);
  if (offset >= limit) return offset;
  for (const r of progress.ranges) if (r.start <= offset && offset < r.end) return Math.min(r.end, limit);
  return offset;
}
