/**
 * The ops state of a mirror or a relay: metrics, upstream health (each upstream's /v2/ pinged
 * every FERRY_UPSTREAM_PING_SECONDS, default 60), live transfers, store size, recent errors.
 * Built by server/service.ts; each role mounts the routes that show it (server/ops/ops-routes.ts).
 */
import type { LoadedConfig } from '../../lib/config/load.ts';
import type { Logger } from '../../lib/log/logger.ts';
import type { Transfers } from '../../lib/mirror/transfers.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import type { UpstreamClient } from '../../lib/upstream/client.ts';
import { ferryVersion } from '../../lib/project-files.ts';
import { MirrorOps } from '../../lib/metrics/ops.ts';

/** `pinged`: the upstreams whose health is pinged (the relay: only those it serves); all by default. */
export function createServiceOps(config: LoadedConfig, logger: Logger, storage: Storage, transfers: Transfers, clients: Iterable<UpstreamClient>, pinged: (name: string) => boolean = () => true): MirrorOps {
  const seconds = Number(process.env.FERRY_UPSTREAM_PING_SECONDS ?? 60);
  return new MirrorOps({
    logger: logger.child({ module: 'ops' }),
    storage,
    transfers,
    // Through the client: its auth (the relay token), its TLS settings, and only the upstreams served.
    upstreams: [...clients].map((c) => ({ name: c.name, url: c.baseUrl, ...(pinged(c.name) ? { ping: (signal: AbortSignal) => c.ping(signal) } : {}) })),
    pingIntervalMs: Number.isFinite(seconds) ? seconds * 1000 : 60_000,
    processMetrics: true,
    version: ferryVersion(),
  });
}
