/** Assembles and starts the mirror role from a loaded config. */
import type { Server } from 'node:http';
import type { LoadedConfig } from '../lib/config/load.ts';
import { createLogger, type Logger } from '../lib/log/logger.ts';
import { startLocked, type DataDirLock } from '../lib/storage/data-dir-lock.ts';
import { openStore, type FsStorage } from '../lib/storage/store.ts';
import { startSweeper } from '../lib/storage/sweeper.ts';
import { LocalRegistry } from '../lib/registry/local.ts';
import { MirrorRegistry } from '../lib/mirror/mirror-registry.ts';
import { Transfers } from '../lib/mirror/transfers.ts';
import { Prefetcher } from '../lib/mirror/prefetch.ts';
import { LinkStateFile } from '../lib/transfer/link-state.ts';
import { engineTransferStarter } from '../lib/mirror/transfer-starter.ts';
import { relaysPort, upstreamPort } from '../lib/mirror/upstream-port.ts';
import type { TransferStarter, UpstreamPort } from '../lib/mirror/ports.ts';
import { cleanOrphanedParts } from '../lib/transfer/cleanup.ts';
import type { UpstreamClient } from '../lib/upstream/client.ts';
import { createUpstreams } from '../lib/upstream/clients.ts';
import { CacheAccounting, afterFill } from '../lib/storage/eviction.ts';
import { createApp } from './app.ts';
import { setupMirrorOps, type MirrorOpsSetup } from './ops/mirror-ops.ts';
import { stopInOrder, type ServiceParts, type ShutdownResult } from './ops/shutdown.ts';
import { boundAddress, listen } from './listen.ts';

export interface RunningMirror {
  server: Server;
  address: string;
  store: FsStorage;
  backend: MirrorRegistry;
  transfers: Transfers;
  upstreams: Map<string, UpstreamClient>;
  logger: Logger;
  /** Metrics, status, upstream health (server/ops). */
  ops: MirrorOpsSetup['ops'];
  close(): Promise<void>;
  /** SIGTERM: stop accepting, let requests finish (bounded), park transfers for the next start, close. */
  shutdown(opts?: { graceMs?: number }): Promise<ShutdownResult>;
  /** SIGHUP: re-read the TLS certificate and key. */
  reloadTls(): boolean;
}

export interface MirrorDeps {
  logger?: Logger;
  /** Replaces the chunked engine (tests). */
  transferStarter?: TransferStarter;
}

/** Starts the mirror on its data dir, which it holds alone until close() or shutdown(). */
export function startMirror(config: LoadedConfig, deps: MirrorDeps = {}): Promise<RunningMirror> {
  return startLocked(config.dataDir, 'mirror', (lock) => startOnLockedDir(config, deps, lock));
}

async function startOnLockedDir(config: LoadedConfig, deps: MirrorDeps, lock: DataDirLock): Promise<RunningMirror> {
  const logger = deps.logger ?? createLogger(config.log);
  const store = await openStore(config.dataDir, {
    uploadLimits: { perClient: config.limits.uploadSessionsPerClient, perRepository: config.limits.uploadSessionsPerRepository },
  });
  const removed = await cleanOrphanedParts(store.paths.transfersDir, config.transfer.partMaxAgeHours * 3600_000);
  if (removed.length > 0) logger.info({ parts: removed.length }, 'removed orphaned transfer parts');
  const local = new LocalRegistry(store);
  const upstreams = createUpstreams(config, logger);
  const clients = upstreams.clients;
  const ports = new Map<string, UpstreamPort>();
  // What each upstream's link learned survives restarts: the first image after one starts at speed.
  const linkState = new LinkStateFile(store.paths.linkStateFile, store.paths.tmpDir, 5000, (err) => logger.warn({ err, file: store.paths.linkStateFile }, 'link state not saved; links start from their floor'));
  const transferStarter = deps.transferStarter ?? engineTransferStarter(config.transfer, {
    connectionsFor: (name) => config.upstreams[name]?.connections,
    linkState,
    // Several relays: each relay's route is its own link; the upstream carries what they sum to.
    capacityFor: (name) => {
      const pool = upstreams.pools.get(name);
      return pool ? () => pool.capacity() : undefined;
    },
  });
  const transfers = new Transfers(store, transferStarter, logger.child({ module: 'transfer' }), config.transfer.badContentHoldSeconds * 1000);
  const ops = setupMirrorOps(config, logger, store, transfers, clients.values());
  // cache.maxBytes: pull-through content is evicted least recently used first; pushed content is pinned.
  const cache = config.cache.maxBytes === undefined
    ? undefined
    : await CacheAccounting.open(store, { maxBytes: config.cache.maxBytes, logger: logger.child({ module: 'cache' }) });
  if (cache) {
    transfers.on('committed', ({ digest, size }: { digest: string; size: number }) => {
      afterFill(cache, digest, size).catch((err: unknown) => logger.error({ err, digest }, 'cache eviction failed'));
    });
  }
  for (const [name, client] of clients) {
    const pool = upstreams.pools.get(name);
    if (pool) ops.ops.relays.add(pool);
    ports.set(name, ops.watchPort(name, pool ? relaysPort(pool) : upstreamPort(client)));
  }
  const prefetch = config.prefetch.enabled ? new Prefetcher(transfers, store, config.prefetch, logger.child({ module: 'prefetch' })) : undefined;
  const backend = new MirrorRegistry({
    local,
    storage: store,
    routing: config,
    upstreams: ports,
    transfers,
    logger: logger.child({ module: 'mirror' }),
    manifestTtlMs: config.cache.manifestTtlSeconds * 1000,
    metrics: ops.ops.metrics,
    ...(prefetch ? { prefetch } : {}),
    ...(cache ? { onCacheAccess: (digest: string) => cache.recordAccess(digest) } : {}),
  });
  const app = createApp({ pull: backend, push: backend, logger, observe: ops.observe, guard: ops.guard, extra: ops.extra, limits: config.limits });
  const server = await listen(app, { listen: config.listen, tls: config.tls, headersTimeoutMs: config.limits.headersTimeoutSeconds * 1000 });
  const address = boundAddress(server);
  const sweeper = startSweeper(store, {
    uploadIdleMs: config.limits.uploadIdleMinutes * 60_000,
    tmpMaxAgeMs: config.limits.tmpMaxAgeMinutes * 60_000,
    logger: logger.child({ module: 'sweeper' }),
  });
  const parts: ServiceParts = {
    server,
    logger,
    transfers,
    stopAccepting: () => { ops.stopAccepting(); prefetch?.close(); ops.ops.close(); },
    flush: () => linkState.close(),
    clients: [upstreams],
    sweeper,
    lock,
  };
  // SIGTERM during close() (or the reverse) joins the stop under way.
  let stopping: Promise<ShutdownResult> | undefined;
  logger.info({ address, dataDir: config.dataDir, config: config.file, tls: Boolean(config.tls), upstreams: [...clients.keys()] }, 'mirror listening');
  return {
    server,
    address,
    store,
    backend,
    transfers,
    upstreams: clients,
    logger,
    ops: ops.ops,
    reloadTls: () => ops.reloadTls(server),
    shutdown: (opts = {}) => (stopping ??= stopInOrder(parts, opts)),
    async close() {
      await (stopping ??= stopInOrder(parts, { graceMs: 0 }));
    },
  };
}
