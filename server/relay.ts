/** Assembles and starts the relay role from a loaded config. */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { ConfigError, type LoadedConfig } from '../lib/config/load.ts';
import { configSchema } from '../lib/config/schema.ts';
import { createLogger, type Logger } from '../lib/log/logger.ts';
import { Transfers } from '../lib/mirror/transfers.ts';
import { engineTransferStarter } from '../lib/mirror/transfer-starter.ts';
import type { TransferStarter, UpstreamPort } from '../lib/mirror/ports.ts';
import { upstreamPort } from '../lib/mirror/upstream-port.ts';
import { LocalRegistry } from '../lib/registry/local.ts';
import { RelayBlobCache } from '../lib/relay/blob-cache.ts';
import { ChunkLists } from '../lib/relay/chunk-list.ts';
import { FailureThrottle, type FailureThrottleOptions } from '../lib/relay/failure-throttle.ts';
import { RelayBackend, allowedUpstreams } from '../lib/relay/relay-backend.ts';
import { TokenSet } from '../lib/relay/tokens.ts';
import { startLocked, type DataDirLock } from '../lib/storage/data-dir-lock.ts';
import { openStore, type FsStorage } from '../lib/storage/store.ts';
import { startSweeper } from '../lib/storage/sweeper.ts';
import { cleanOrphanedParts } from '../lib/transfer/cleanup.ts';
import type { UpstreamClient } from '../lib/upstream/client.ts';
import { createUpstreamClients } from '../lib/upstream/clients.ts';
import { boundAddress, listen } from './listen.ts';
import { createServiceOps } from './ops/mirror-ops.ts';
import { stopInOrder, type ServiceParts, type ShutdownResult } from './ops/shutdown.ts';
import { createRelayApp } from './relay/relay-app.ts';

export type RelaySettings = NonNullable<LoadedConfig['relay']>;

export interface RunningRelay {
  server: Server;
  address: string;
  settings: RelaySettings;
  store: FsStorage;
  backend: RelayBackend;
  transfers: Transfers;
  cache: RelayBlobCache;
  tokens: TokenSet;
  throttle: FailureThrottle;
  upstreams: Map<string, UpstreamClient>;
  logger: Logger;
  /** Reads the TLS certificate and key again (SIGHUP); false when the relay serves plain HTTP. */
  reloadTls(): boolean;
  /** Stops at once: open responses are cut, transfers stop with their parts kept for the next start. */
  close(): Promise<void>;
  /** Stops gracefully (SIGTERM): requests may finish for a while, then transfers are parked. */
  shutdown(opts?: { graceMs?: number }): Promise<ShutdownResult>;
}

export interface RelayDeps {
  logger?: Logger;
  /** Replaces the chunked engine (tests). */
  transferStarter?: TransferStarter;
  throttle?: FailureThrottleOptions;
}

/** The relay section with its defaults, present or not in the file. */
export function relaySettings(config: LoadedConfig): RelaySettings {
  return config.relay ?? configSchema.shape.relay.unwrap().parse({});
}

export async function startRelay(config: LoadedConfig, deps: RelayDeps = {}): Promise<RunningRelay> {
  const logger = deps.logger ?? createLogger(config.log);
  const settings = relaySettings(config);
  let fileReads = 0;
  const tokens = new TokenSet({
    tokens: settings.tokens,
    tokenFile: settings.tokenFile,
    onFileError: (err) => logger.error({ err: err.message, file: settings.tokenFile }, 'relay token file unusable; its tokens are refused'),
    onFileRead: (n) => { logger.info({ file: settings.tokenFile, tokens: n }, `relay token file ${fileReads++ === 0 ? 'read' : 'reloaded'}`); },
  });
  // Never an open relay: no token, no start.
  if (tokens.size === 0) {
    throw new ConfigError(config.file, 'relay: no token accepted (set relay.tokens or relay.tokenFile; `ferry relay token` prints a new one)');
  }
  if (Object.keys(config.upstreams).length === 0) throw new ConfigError(config.file, 'upstreams: the relay needs at least one upstream');
  return startLocked(config.dataDir, 'relay', (lock) => startOnLockedDir(config, deps, { logger, settings, tokens }, lock));
}

/** The relay on its data dir, which it holds alone until close() or shutdown(). */
async function startOnLockedDir(
  config: LoadedConfig,
  deps: RelayDeps,
  { logger, settings, tokens }: { logger: Logger; settings: RelaySettings; tokens: TokenSet },
  lock: DataDirLock,
): Promise<RunningRelay> {
  const store = await openStore(config.dataDir);
  const removed = await cleanOrphanedParts(store.paths.transfersDir, config.transfer.partMaxAgeHours * 3600_000);
  if (removed.length > 0) logger.info({ parts: removed.length }, 'removed orphaned transfer parts');
  const clients = createUpstreamClients(config, logger);
  const ports = new Map<string, UpstreamPort>();
  for (const [name, client] of clients) ports.set(name, upstreamPort(client));
  const chunkLists = new ChunkLists(store);
  const cache = await RelayBlobCache.open(store, {
    maxBytes: settings.cacheMaxBytes,
    onEvict: (digest) => chunkLists.remove(digest),
    logger: logger.child({ module: 'relay-cache' }),
  });
  const transferStarter = deps.transferStarter ?? engineTransferStarter(config.transfer, { connectionsFor: (name) => config.upstreams[name]?.connections });
  const transfers = new Transfers(store, transferStarter, logger.child({ module: 'transfer' }), config.transfer.badContentHoldSeconds * 1000);
  transfers.on('committed', (e: { digest: string; size: number }) => {
    void cache.added(e.digest, e.size).catch(() => undefined);
  });
  const backend = new RelayBackend({
    local: new LocalRegistry(store),
    storage: store,
    routing: config,
    upstreams: ports,
    transfers,
    logger: logger.child({ module: 'relay' }),
    manifestTtlMs: config.cache.manifestTtlSeconds * 1000,
    onCacheAccess: (digest) => cache.accessed(digest),
    allow: settings.allow,
    chunkLists,
  });
  const throttle = new FailureThrottle(deps.throttle);
  const allowed = allowedUpstreams(settings.allow, config.upstreams);
  const ops = createServiceOps(config, logger, store, transfers, clients.values(), (name) => allowed.has(name));
  let ready = true;
  const app = createRelayApp({ backend, tokens, throttle, chunkBytes: settings.chunkBytes, logger, observe: ops.observe, ops, ready: () => ready });
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
    stopAccepting: () => { ready = false; ops.close(); },
    clients: [...clients.values()],
    sweeper,
    lock,
  };
  // SIGTERM during close() (or the reverse) joins the stop under way.
  let stopping: Promise<ShutdownResult> | undefined;
  logger.info({
    address, dataDir: config.dataDir, config: config.file, tls: Boolean(config.tls), tokens: tokens.size,
    upstreams: [...clients.keys()], allow: settings.allow.length > 0 ? settings.allow : 'all', cacheMaxBytes: settings.cacheMaxBytes,
    cachedBytes: cache.totalBytes,
  }, 'relay listening');
  return {
    server,
    address,
    settings,
    store,
    backend,
    transfers,
    cache,
    tokens,
    throttle,
    upstreams: clients,
    logger,
    reloadTls() {
      if (!config.tls) return false;
      (server as unknown as HttpsServer).setSecureContext({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) });
      logger.info({ cert: config.tls.cert }, 'TLS certificate reloaded');
      return true;
    },
    shutdown: (opts = {}) => (stopping ??= stopInOrder(parts, opts)),
    async close() {
      await (stopping ??= stopInOrder(parts, { graceMs: 0 }));
    },
  };
}
