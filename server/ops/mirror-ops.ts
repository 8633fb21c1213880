/**
 * Everything the ops layer adds to a mirror, assembled from the config in one call: metrics,
 * status page, health routes, upstream health, push protection, graceful shutdown, TLS reload.
 * server/mirror.ts wires the pieces into the app with a few lines.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Express, RequestHandler } from 'express';
import type { LoadedConfig } from '../../lib/config/load.ts';
import type { Logger } from '../../lib/log/logger.ts';
import type { Transfers } from '../../lib/mirror/transfers.ts';
import type { UpstreamPort } from '../../lib/mirror/ports.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import type { UpstreamClient } from '../../lib/upstream/client.ts';
import { ferryVersion } from '../../lib/project-files.ts';
import { MirrorOps } from '../../lib/metrics/ops.ts';
import { recordingPort } from '../../lib/metrics/recording-port.ts';
import { RegistryAuth } from '../auth/registry-auth.ts';
import { Htpasswd } from '../auth/htpasswd.ts';
import { mountOpsRoutes } from './ops-routes.ts';

export interface MirrorOpsSetup {
  ops: MirrorOps;
  /** The access log observer. */
  observe: MirrorOps['observe'];
  /** Push protection before /v2/ when config.auth is set (its token endpoint is mounted by `extra`). */
  guard: RequestHandler | undefined;
  /** Mounts /metrics, /, /status, /status.json, /healthz, /readyz (and /auth/token with auth). */
  extra: (app: Express) => void;
  /** An upstream port whose outcomes feed the upstream health. */
  watchPort(name: string, port: UpstreamPort): UpstreamPort;
  /** Readiness goes false (the first step of stopInOrder). */
  stopAccepting(): void;
  /** Re-reads tls.cert and tls.key into the running HTTPS server (SIGHUP). */
  reloadTls(server: Server): boolean;
}

/**
 * The ops state of a mirror or a relay: metrics, upstream health (each upstream's /v2/ pinged
 * every FERRY_UPSTREAM_PING_SECONDS, default 60), live transfers, store size, recent errors.
 */
export function createServiceOps(config: LoadedConfig, logger: Logger, storage: Storage, transfers: Transfers, clients: Iterable<UpstreamClient>, served: (name: string) => boolean = () => true): MirrorOps {
  const seconds = Number(process.env.FERRY_UPSTREAM_PING_SECONDS ?? 60);
  return new MirrorOps({
    logger: logger.child({ module: 'ops' }),
    storage,
    transfers,
    // Through the client: its auth (the relay token), its TLS settings, and only the upstreams served.
    upstreams: [...clients].map((c) => ({ name: c.name, url: c.baseUrl, ...(served(c.name) ? { ping: (signal: AbortSignal) => c.ping(signal) } : {}) })),
    pingIntervalMs: Number.isFinite(seconds) ? seconds * 1000 : 60_000,
    processMetrics: true,
    version: ferryVersion(),
  });
}

export function setupMirrorOps(config: LoadedConfig, logger: Logger, storage: Storage, transfers: Transfers, clients: Iterable<UpstreamClient>): MirrorOpsSetup {
  const ops = createServiceOps(config, logger, storage, transfers, clients);
  let ready = true;
  const auth = config.auth
    ? new RegistryAuth({ htpasswd: new Htpasswd(config.auth.htpasswd), realm: config.auth.realm, protectPull: config.auth.protectPull })
    : undefined;
  return {
    ops,
    observe: ops.observe,
    guard: auth?.guard,
    extra: (app) => {
      mountOpsRoutes(app, ops, { ready: () => ready });
      auth?.mount(app);
    },
    watchPort: (name, port) => recordingPort(name, port, ops.health),
    stopAccepting: () => { ready = false; },
    reloadTls(server) {
      if (!config.tls || !(server instanceof HttpsServer)) return false;
      try {
        server.setSecureContext({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) });
        logger.info({ cert: config.tls.cert }, 'TLS certificate reloaded');
        return true;
      } catch (e) {
        logger.error({ err: e, cert: config.tls.cert }, 'TLS reload failed; keeping the previous certificate');
        return false;
      }
    },
  };
}
