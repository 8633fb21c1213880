/**
 * The relay role: a pull-only backend under an allow policy (lib/relay/relay-backend.ts), its
 * /chunks route, the token guard in front of everything but /healthz and /readyz, and a per-blob
 * LRU cache (relay.cacheMaxBytes). Everything else is the service's (server/service.ts).
 */
import type { LoadedConfig } from '../lib/config/load.ts';
import { ConfigError } from '../lib/config/load.ts';
import { configSchema } from '../lib/config/schema.ts';
import { createLogger, type Logger } from '../lib/log/logger.ts';
import { RelayBlobCache } from '../lib/relay/blob-cache.ts';
import { ChunkLists } from '../lib/relay/chunk-list.ts';
import { FailureThrottle, type FailureThrottleOptions } from '../lib/relay/failure-throttle.ts';
import { RelayBackend, allowedUpstreams } from '../lib/relay/relay-backend.ts';
import { TokenSet } from '../lib/relay/tokens.ts';
import { mountFiguresRoutes, mountHealthRoutes } from './ops/ops-routes.ts';
import { chunksRoute } from './relay/chunks.ts';
import { tokenGuard } from './relay/token-guard.ts';
import { startService, type Role, type RunningService, type ServiceDeps } from './service.ts';

export type RelaySettings = NonNullable<LoadedConfig['relay']>;

interface RelayParts {
  settings: RelaySettings;
  backend: RelayBackend;
  cache: RelayBlobCache;
  tokens: TokenSet;
  throttle: FailureThrottle;
}

export interface RunningRelay extends RunningService, RelayParts {}

export interface RelayDeps extends ServiceDeps {
  throttle?: FailureThrottleOptions;
}

/** The relay section with its defaults, present or not in the file. */
export function relaySettings(config: LoadedConfig): RelaySettings {
  return config.relay ?? configSchema.shape.relay.unwrap().parse({});
}

export function startRelay(config: LoadedConfig, deps: RelayDeps = {}): Promise<RunningRelay> {
  const logger = deps.logger ?? createLogger(config.log);
  return startService(config, relayRole(config, deps, logger), { ...deps, logger });
}

/** The relay's part; refuses (ConfigError, before the data dir is taken) a relay without tokens or upstreams. */
function relayRole(config: LoadedConfig, deps: RelayDeps, logger: Logger): Role<RelayParts> {
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
  const allowed = allowedUpstreams(settings.allow, config.upstreams);
  return {
    name: 'relay',
    pinged: (name) => allowed.has(name),
    // Its clients are mirrors that check each piece against /chunks: a blob streams as it arrives.
    holdsUnverified: false,
    async start({ store, transfers, pullThrough, ops, ready }) {
      const chunkLists = new ChunkLists(store);
      const cache = await RelayBlobCache.open(store, {
        maxBytes: settings.cacheMaxBytes,
        onEvict: (digest) => chunkLists.remove(digest),
        logger: logger.child({ module: 'relay-cache' }),
      });
      transfers.on('committed', (e: { digest: string; size: number }) => {
        void cache.added(e.digest, e.size).catch(() => undefined);
      });
      const backend = new RelayBackend({
        ...pullThrough,
        onCacheAccess: (digest) => cache.accessed(digest),
        allow: settings.allow,
        chunkLists,
      });
      const throttle = new FailureThrottle(deps.throttle);
      return {
        pull: backend,
        routes: [chunksRoute(backend, settings.chunkBytes)],
        // Ahead of every route, /v2/ and anything else alike: health open, the rest behind the token.
        mount: (app) => {
          mountHealthRoutes(app, { ready });
          app.use(tokenGuard({ tokens, throttle }));
          mountFiguresRoutes(app, ops);
        },
        reload: () => tokens.reload(),
        describe: { tokens: tokens.size, allow: settings.allow.length > 0 ? settings.allow : 'all', cacheMaxBytes: settings.cacheMaxBytes, cachedBytes: cache.totalBytes },
        exposed: { settings, backend, cache, tokens, throttle },
      };
    },
  };
}
