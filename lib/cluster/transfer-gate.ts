/**
 * Single flight across replicas: one transfer per digest in the whole cluster. A replica about to
 * transfer a blob that is not in the bucket yet claims it here, after its own per-process single
 * flight (lib/mirror/transfers.ts) found no transfer running:
 *
 *   holder    it took the digest's lease: it runs the transfer, continuing from
 *             `progress.previous` (what a dead holder left in the bucket), publishes progress as
 *             parts land, stops writing the moment `lease.signal` aborts, and at the end publishes
 *             done, then releases the lease.
 *   follower  another replica holds it: serve the client from the bucket as the progress grows
 *             (`watcher.until(offset)`); on TransferOrphanedError claim again: the follower that
 *             wins becomes the holder and continues.
 *
 * The caller checks that the blob is not committed already, before claiming and again when it
 * becomes a holder (the previous holder may have committed between the two).
 */
import type { HeldLease, Leases } from './lease.ts';
import type { ClusterObjects } from './objects.ts';
import { ProgressWatcher, type ProgressWatcherOptions } from './progress-watcher.ts';
import { ProgressWriter, transferLeaseName } from './progress.ts';

export type TransferClaim<Parts = unknown> =
  | { role: 'holder'; lease: HeldLease; progress: ProgressWriter<Parts> }
  | { role: 'follower'; watcher: ProgressWatcher<Parts> };

export class TransferGate {
  constructor(
    private readonly objects: ClusterObjects,
    private readonly leases: Leases,
    private readonly watch: ProgressWatcherOptions = {},
  ) {}

  async claim<Parts = unknown>(digest: string): Promise<TransferClaim<Parts>> {
    const lease = await this.leases.tryTake(transferLeaseName(digest));
    if (!lease) return { role: 'follower', watcher: new ProgressWatcher<Parts>(this.objects, this.leases, digest, this.watch) };
    try {
      return { role: 'holder', lease, progress: await ProgressWriter.open<Parts>(this.objects, lease, digest) };
    } catch (err) {
      await lease.release();
      throw err;
    }
  }
}
