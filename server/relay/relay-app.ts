/**
 * The relay's express app: health checks, then the token guard in front of everything else: a
 * pull-only /v2/ API (base, manifests, blobs with ranges, tags, per-chunk digests), /metrics and
 * /status.json. Every other method answers UNSUPPORTED (405) before any routing, so nothing can
 * be written.
 */
import type { Express, RequestHandler } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import type { Logger } from '../../lib/log/logger.ts';
import type { FailureThrottle } from '../../lib/relay/failure-throttle.ts';
import type { RelayRegistry } from '../../lib/relay/relay-registry.ts';
import type { TokenSet } from '../../lib/relay/tokens.ts';
import type { RequestObserver } from '../access-log.ts';
import { createMirrorApp } from '../mirror-app.ts';
import { mountFiguresRoutes, mountHealthRoutes } from '../ops/ops-routes.ts';
import type { MirrorOps } from '../../lib/metrics/ops.ts';
import { chunksRoute } from './chunks.ts';
import { tokenGuard } from './token-guard.ts';

export interface RelayAppOptions {
  backend: RelayRegistry;
  tokens: TokenSet;
  throttle: FailureThrottle;
  /** Chunk size of /chunks when the request names none. */
  chunkBytes: number;
  logger?: Logger;
  observe?: RequestObserver;
  /** Ops figures: /healthz and /readyz open, /metrics and /status.json behind the token. */
  ops?: MirrorOps;
  /** False once shutdown began (/readyz). */
  ready?: () => boolean;
}

const pullOnly: RequestHandler = (req, res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD') {
    next();
    return;
  }
  req.resume();
  res.setHeader('Allow', 'GET, HEAD');
  next(new RegistryError('UNSUPPORTED', `the relay is pull-only: ${req.method} is not supported`));
};

export function createRelayApp(opts: RelayAppOptions): Express {
  return createMirrorApp({
    backend: opts.backend,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
    // Ahead of every route, /v2/ and anything else alike.
    extra: (app) => {
      if (opts.ops) mountHealthRoutes(app, { ready: opts.ready });
      app.use(tokenGuard({ tokens: opts.tokens, throttle: opts.throttle }));
      app.use(pullOnly);
      if (opts.ops) mountFiguresRoutes(app, opts.ops);
      app.use('/v2', chunksRoute(opts.backend, opts.chunkBytes));
    },
  });
}
