/**
 * The one composition root of both roles. `startService(config, role)` holds the data dir, opens
 * the store, sweeps orphaned transfer parts, makes the upstream clients (every call recorded for
 * upstream health and metrics), the single-flight transfers with the transfer engine, the ops state,
 * and listens (TLS, reloaded by `reloadTls`). The role adds only what is its own: its backends,
 * its routes and what it mounts ahead of them (server/mirror.ts, server/relay.ts).
 *
 * One lifecycle order for `close()` and `shutdown()` (server/ops/shutdown.ts:stopInOrder): stop
 * accepting, let requests run (bounded), park the transfers and await their commits, flush link state,
 * close the upstream clients, stop the sweeper, release the lock.
 */
import type { Server } from 'node:http';
import type { Express, RequestHandler } from 'express';
import type { LoadedConfig } from '../lib/config/load.ts';
import { createLogger, type Logger } from '../lib/log/logger.ts';
import type { MirrorOps } from '../lib/metrics/ops.ts';
import { recordingPort } from '../lib/metrics/recording-port.ts';
import { Transfers, engineTransferStarter, type TransferStarter } from '../lib/mirror/transfers.ts';
import type { MirrorOptions } from '../lib/mirror/mirror-registry.ts';
import { relaysPort, upstreamPort, type UpstreamPort } from '../lib/mirror/upstream-port.ts';
import { LocalRegistry } from '../lib/registry/local.ts';
import { startLocked, type DataDirLock } from '../lib/storage/data-dir-lock.ts';
import { describeStorage, openStorage, type OpenedStorage } from '../lib/storage/open-storage.ts';
import { startSweeper } from '../lib/storage/sweeper.ts';
import { LinkState } from '../lib/transfer/link-state.ts';
import type { UpstreamClient } from '../lib/upstream/client.ts';
import type { ClusterReplica } from '../lib/cluster/cluster-replica.ts';
import type { Storage } from '../lib/storage/storage.ts';
import { createUpstreams, type Upstreams } from '../lib/upstream/clients.ts';
import { createApp } from './app.ts';
import { boundAddress, listen, reloadTls } from './listen.ts';
import { createServiceOps } from './ops/service-ops.ts';
import { stopInOrder, type ServiceParts, type ShutdownResult } from './ops/shutdown.ts';
import type { V2Backends } from './v2/router.ts';

/** What the service built before the role's turn: the role builds its backends from these. */
export interface ServiceCore {
  config: LoadedConfig;
  logger: Logger;
  store: OpenedStorage;
  transfers: Transfers;
  /**
   * What a pull-through backend (lib/mirror/mirror-registry.ts) stands on: the local registry, the
   * storage, the routing, each upstream with every call recorded in the upstream health, the transfers, the metrics.
   */
  pullThrough: PullThroughParts;
  ops: MirrorOps;
  /** This replica's part in a cluster on a shared bucket; undefined on the filesystem store (one process). */
  cluster: ClusterReplica | undefined;
  /** False once a stop began (/readyz). */
  ready(): boolean;
}

export type PullThroughParts = Pick<MirrorOptions, 'local' | 'storage' | 'routing' | 'upstreams' | 'transfers' | 'logger' | 'manifestTtlMs' | 'metrics'>;

/** What a role supplies: its /v2/ backends and routes, what it mounts ahead of them, what it shows. */
export interface RoleParts<Exposed> extends V2Backends {
  /** Mounted ahead of every route: ops routes, the relay's token guard, the mirror's token endpoint. */
  mount(app: Express): void;
  /** Runs before /v2/ only (the mirror's push protection). */
  guard?: RequestHandler;
  /** The first step of a stop, beside readiness: nothing of the role starts a transfer on its own (prefetch). */
  stopAccepting?(): void;
  /** SIGHUP, beside the TLS certificate: what the role re-reads (the relay's token file). */
  reload?(): void;
  /** Fields of the "listening" log line. */
  describe?: Record<string, unknown>;
  /** Added to the running service (tests and the CLI reach the role's parts here). */
  exposed: Exposed;
}

export interface Role<Exposed> {
  name: 'mirror' | 'relay';
  /** The upstreams whose /v2/ ops pings (the relay: those it serves); all when absent. */
  pinged?: (upstream: string) => boolean;
  /** Whether its transfers hold unchecked bytes until the blob verified where the config does not say (transfer.holdUnverified). */
  holdsUnverified: boolean;
  start(core: ServiceCore): Promise<RoleParts<Exposed>>;
}

export interface ServiceDeps {
  logger?: Logger;
  /** Replaces the chunked engine (tests). */
  transferStarter?: TransferStarter;
}

export interface RunningService {
  server: Server;
  address: string;
  store: OpenedStorage;
  transfers: Transfers;
  upstreams: Map<string, UpstreamClient>;
  logger: Logger;
  /** Metrics, status, upstream health (server/ops). */
  ops: MirrorOps;
  /** Stops at once: open responses are cut, transfers stop with their parts kept for the next start. */
  close(): Promise<void>;
  /** SIGTERM: stop accepting, let requests finish (bounded), park transfers for the next start, close. */
  shutdown(opts?: { graceMs?: number }): Promise<ShutdownResult>;
  /** SIGHUP: re-reads the TLS certificate and key; false for plain HTTP or an unusable file (the old one stays). */
  reloadTls(): boolean;
  /** SIGHUP: the role's reload, then the TLS certificate. */
  reload(): void;
}

/** Starts a role on its data dir, which it holds alone until close() or shutdown(). */
export function startService<Exposed>(config: LoadedConfig, role: Role<Exposed>, deps: ServiceDeps = {}): Promise<RunningService & Exposed> {
  return startLocked(config.dataDir, role.name, (lock) => startOnLockedDir(config, role, deps, lock));
}

async function startOnLockedDir<Exposed>(config: LoadedConfig, role: Role<Exposed>, deps: ServiceDeps, lock: DataDirLock): Promise<RunningService & Exposed> {
  const logger = deps.logger ?? createLogger(config.log);
  const store = await openStorage(config);
  const removed = await store.partials.sweep(config.transfer.partMaxAgeHours * 3600_000);
  if (removed.length > 0) logger.info({ parts: removed.length }, 'removed orphaned transfer parts');
  // Replicas on one bucket: one transfer per digest among them, the link shared (docs/cluster.md).
  const cluster = await joinClusterIfShared(config, store, logger.child({ module: 'cluster' }));
  const upstreams = createUpstreams(config, logger);
  // What each upstream's link learned survives restarts: the first image after one starts at speed.
  const linkState = await LinkState.load(store.partials, 5000, (err) => logger.warn({ err }, 'link state not saved; links start from their floor'));
  const engine = deps.transferStarter ?? transferEngine(config, role.holdsUnverified, upstreams, linkState, cluster);
  const transfers = new Transfers(cluster ? { blobs: store.blobs, repositories: store.repositories, uploads: store.uploads, partials: cluster.partials } : store, cluster ? cluster.transfers(engine) : engine, logger.child({ module: 'transfer' }), config.transfer.badContentHoldSeconds * 1000);
  const ops = createServiceOps(config, logger, store, transfers, upstreams.clients.values(), role.pinged);
  let ready = true;
  let parts: RoleParts<Exposed>;
  let server: Server;
  try {
    const pullThrough: PullThroughParts = {
      local: new LocalRegistry(store),
      storage: store,
      routing: config,
      upstreams: recordedPorts(upstreams, ops),
      transfers,
      logger: logger.child({ module: role.name }),
      manifestTtlMs: config.cache.manifestTtlSeconds * 1000,
      metrics: ops.metrics,
    };
    parts = await role.start({ config, logger, store, transfers, pullThrough, ops, cluster, ready: () => ready });
    const app = createApp({
      pull: parts.pull,
      ...(parts.push ? { push: parts.push } : {}),
      ...(parts.routes ? { routes: parts.routes } : {}),
      ...(parts.guard ? { guard: parts.guard } : {}),
      extra: parts.mount,
      logger,
      observe: ops.observe,
      limits: config.limits,
    });
    server = await listen(app, { listen: config.listen, tls: config.tls, headersTimeoutMs: config.limits.headersTimeoutSeconds * 1000 });
  } catch (e) {
    // Not started (a port in use, a TLS file missing): nothing may stay behind (startLocked releases the lock).
    ops.close();
    await upstreams.close();
    await linkState.close();
    await cluster?.stop();
    store.close?.();
    throw e;
  }
  const address = boundAddress(server);
  const sweeper = startSweeper(store, {
    uploadIdleMs: config.limits.uploadIdleMinutes * 60_000,
    tmpMaxAgeMs: config.limits.tmpMaxAgeMinutes * 60_000,
    logger: logger.child({ module: 'sweeper' }),
  });
  const stopParts: ServiceParts = {
    server,
    logger,
    transfers,
    stopAccepting: () => {
      ready = false;
      parts.stopAccepting?.();
      ops.close();
    },
    flush: async () => {
      await linkState.close();
      await cluster?.stop();
    },
    clients: [upstreams],
    // The store's own client (S3) closes after the last sweep.
    sweeper: { stop: async () => { await sweeper.stop(); store.close?.(); } },
    lock,
  };
  // SIGTERM during close() (or the reverse) joins the stop under way.
  let stopping: Promise<ShutdownResult> | undefined;
  logger.info({
    address, dataDir: config.dataDir, store: describeStorage(config), config: config.file, tls: Boolean(config.tls), upstreams: [...upstreams.clients.keys()], ...parts.describe,
  }, `${role.name} listening`);
  return {
    ...parts.exposed,
    server,
    address,
    store,
    transfers,
    upstreams: upstreams.clients,
    logger,
    ops,
    reloadTls: () => reloadTls(server, config.tls, logger),
    reload() {
      parts.reload?.();
      reloadTls(server, config.tls, logger);
    },
    shutdown: (opts = {}) => (stopping ??= stopInOrder(stopParts, opts)),
    async close() {
      await (stopping ??= stopInOrder(stopParts, { graceMs: 0 }));
    },
  };
}

/** The chunked transfer engine over the upstreams' links, each capped by its upstream's connections. */
function transferEngine(config: LoadedConfig, holdsUnverified: boolean, upstreams: Upstreams, linkState: LinkState, cluster: ClusterReplica | undefined): TransferStarter {
  return engineTransferStarter({ ...config.transfer, holdUnverified: config.transfer.holdUnverified ?? holdsUnverified }, {
    connectionsFor: (name) => config.upstreams[name]?.connections,
    linkState,
    ...(cluster ? { linkBudget: cluster.linkBudget } : {}),
    // Several relays: each relay's route is its own link; the upstream carries what they sum to.
    capacityFor: (name) => {
      const pool = upstreams.pools.get(name);
      return pool ? () => pool.capacity() : undefined;
    },
  });
}

/** This replica's part in a cluster when its store is an S3 bucket (the cluster's modules loaded only then). */
async function joinClusterIfShared(config: LoadedConfig, store: Storage, logger: Logger): Promise<ClusterReplica | undefined> {
  if (config.storage.kind !== 's3') return undefined;
  const [{ S3Storage }, { joinCluster }] = await Promise.all([import('../lib/storage/s3/storage.ts'), import('../lib/cluster/cluster-replica.ts')]);
  return store instanceof S3Storage ? joinCluster(store.bucket, store, logger) : undefined;
}

/** One port per upstream (over its relays where it has several), every outcome fed to the upstream health. */
function recordedPorts(upstreams: Upstreams, ops: MirrorOps): Map<string, UpstreamPort> {
  const ports = new Map<string, UpstreamPort>();
  for (const [name, client] of upstreams.clients) {
    const pool = upstreams.pools.get(name);
    if (pool) ops.relays.add(pool);
    ports.set(name, recordingPort(name, pool ? relaysPort(pool) : upstreamPort(client), ops.health));
  }
  return ports;
}
