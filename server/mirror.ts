/**
 * The mirror role: a pull-through registry with local repositories (pull and push backends:
 * MirrorRegistry), prefetch, cache eviction by manifest (cache.maxBytes), the status page and
 * push protection (auth). Everything else is the service's (server/service.ts).
 */
import type { LoadedConfig } from '../lib/config/load.ts';
import { MirrorRegistry } from '../lib/mirror/mirror-registry.ts';
import { Prefetcher } from '../lib/mirror/prefetch.ts';
import { CacheAccounting, afterFill } from '../lib/storage/eviction.ts';
import { RegistryAuth } from './auth/registry-auth.ts';
import { Htpasswd } from './auth/htpasswd.ts';
import { mountOpsRoutes } from './ops/ops-routes.ts';
import { startService, type Role, type RunningService, type ServiceDeps } from './service.ts';

export interface RunningMirror extends RunningService {
  backend: MirrorRegistry;
}

export type MirrorDeps = ServiceDeps;

/** Starts the mirror on its data dir, which it holds alone until close() or shutdown(). */
export function startMirror(config: LoadedConfig, deps: MirrorDeps = {}): Promise<RunningMirror> {
  return startService(config, mirrorRole, deps);
}

const mirrorRole: Role<{ backend: MirrorRegistry }> = {
  name: 'mirror',
  // Its clients (skopeo, dockerd) fail a pull whose body was cut: only verified bytes go out.
  holdsUnverified: true,
  async start({ config, logger, store, transfers, pullThrough, ops, cluster, ready }) {
    // cache.maxBytes: pull-through content is evicted least recently used first; pushed content is pinned.
    // In a cluster the limit is the cluster's: every replica's fills and accesses count.
    const cache = config.cache.maxBytes === undefined
      ? undefined
      : await CacheAccounting.open(store, { maxBytes: config.cache.maxBytes, shared: cluster !== undefined, logger: logger.child({ module: 'cache' }) });
    if (cache) {
      transfers.on('committed', ({ digest, size }: { digest: string; size: number }) => {
        afterFill(cache, digest, size).catch((err: unknown) => logger.error({ err, digest }, 'cache eviction failed'));
      });
    }
    const prefetch = config.prefetch.enabled ? new Prefetcher(transfers, store, config.prefetch, logger.child({ module: 'prefetch' })) : undefined;
    const backend = new MirrorRegistry({
      ...pullThrough,
      ...(prefetch ? { prefetch } : {}),
      ...(cache ? { onCacheAccess: (digest: string) => cache.recordAccess(digest) } : {}),
    });
    const auth = config.auth
      ? new RegistryAuth({ htpasswd: new Htpasswd(config.auth.htpasswd), realm: config.auth.realm, protectPull: config.auth.protectPull })
      : undefined;
    return {
      pull: backend,
      push: backend,
      // Everything open like its /v2/ (push protection guards writes only), and the token endpoint.
      mount: (app) => {
        mountOpsRoutes(app, ops, { ready });
        auth?.mount(app);
      },
      ...(auth ? { guard: auth.guard } : {}),
      stopAccepting: () => prefetch?.close(),
      exposed: { backend },
    };
  },
};
