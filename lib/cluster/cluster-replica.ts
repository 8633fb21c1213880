/**
 * This process as one replica of a cluster on a shared S3 bucket (docs/cluster.md): what the
 * composition root (server/service.ts) builds when storage.kind is s3. The coordination objects
 * live under `cluster/` of the store's prefix (keys.cluster, lib/storage/s3/keys.ts).
 *
 *   partials        the store's partial blobs with single flight across replicas (cluster-partials.ts)
 *   transfers(e)    the engine's transfers, each run here or followed (cluster-transfers.ts)
 *   linkBudget      each upstream's budget capped at this replica's share of the link (link-share.ts)
 *   stop()          leaves: heartbeat deleted (after the transfers are parked)
 *
 * Every minute it sweeps the transfer progress records nobody finishes or reads (progress.ts).
 */
import type { Logger } from '../log/logger.ts';
import type { TransferStarter } from '../mirror/transfers.ts';
import type { PartialBlobStorage } from '../storage/partial-blobs.ts';
import type { S3Bucket } from '../storage/s3/bucket.ts';
import { keys } from '../storage/s3/keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { LinkBudget, LinkBudgetOptions } from '../transfer/link-budget.ts';
import { ClusterPartialBlobs } from './cluster-partials.ts';
import { clusterTransferStarter } from './cluster-transfers.ts';
import { Leases } from './lease.ts';
import { SharedLinks } from './link-share.ts';
import { ClusterObjects } from './objects.ts';
import { sweepProgress } from './progress.ts';
import { Replicas } from './replicas.ts';
import { TransferGate } from './transfer-gate.ts';

/** How often a replica sweeps the progress records nobody will finish or read. */
const SWEEP_EVERY_MS = 60_000;
/** A done progress record this old was left by a holder that died before removing it (its followers have long read done). */
const DONE_RECORD_MAX_AGE_MS = 60_000;

export interface ClusterReplica {
  readonly id: string;
  readonly partials: PartialBlobStorage;
  transfers(engine: TransferStarter): TransferStarter;
  linkBudget(upstream: string, opts: LinkBudgetOptions): LinkBudget;
  stop(): Promise<void>;
}

/** Joins the cluster on `bucket` (the store's): heartbeats begin before this resolves. */
export async function joinCluster(bucket: S3Bucket, storage: Storage, logger: Logger): Promise<ClusterReplica> {
  const objects = new ClusterObjects(bucket.under(keys.cluster));
  const leases = new Leases(objects, undefined, {}, (err) => logger.warn({ err }, 'transfer lease lost'));
  const links = new SharedLinks();
  const replicas = new Replicas(objects, { id: leases.holder, state: links.heartbeat, onError: (err) => logger.warn({ err }, 'cluster heartbeat failed') });
  links.attach(replicas);
  await replicas.start();
  const partials = new ClusterPartialBlobs(storage.partials, new TransferGate(objects, leases), undefined, (digest) => storage.blobs.has(digest));
  const sweep = setInterval(() => {
    sweepProgress(objects, leases, { doneAgeMs: DONE_RECORD_MAX_AGE_MS, resumable: (digest) => storage.partials.has(digest) })
      .catch((err: unknown) => logger.warn({ err }, 'sweeping transfer progress failed'));
  }, SWEEP_EVERY_MS);
  sweep.unref();
  logger.info({ replica: replicas.id }, 'joined the cluster');
  return {
    id: replicas.id,
    partials,
    transfers: clusterTransferStarter,
    linkBudget: (upstream, opts) => links.budget(upstream, opts),
    stop: () => {
      clearInterval(sweep);
      return replicas.stop();
    },
  };
}
