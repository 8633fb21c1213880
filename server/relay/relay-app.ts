/**
 * The relay's express app: health checks, then the token guard in front of everything else: a
 * pull-only /v2/ API (base, manifests, blobs with ranges, tags, and the relay's own route, per-chunk
 * digests), /metrics and /status.json. The backend offers no push side, so the /v2/ route table
 * answers writes UNSUPPORTED (405).
 */
import type { Express } from 'express';
import type { Logger } from '../../lib/log/logger.ts';
import type { FailureThrottle } from '../../lib/relay/failure-throttle.ts';
import type { RelayBackend } from '../../lib/relay/relay-backend.ts';
import type { TokenSet } from '../../lib/relay/tokens.ts';
import type { RequestObserver } from '../access-log.ts';
import { createApp } from '../app.ts';
import { mountFiguresRoutes, mountHealthRoutes } from '../ops/ops-routes.ts';
import type { MirrorOps } from '../../lib/metrics/ops.ts';
import { chunksRoute } from './chunks.ts';
import { tokenGuard } from './token-guard.ts';

export interface RelayAppOptions {
  backend: RelayBackend;
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

export function createRelayApp(opts: RelayAppOptions): Express {
  return createApp({
    pull: opts.backend,
    routes: [chunksRoute(opts.backend, opts.chunkBytes)],
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
    // Ahead of every route, /v2/ and anything else alike.
    extra: (app) => {
      if (opts.ops) mountHealthRoutes(app, { ready: opts.ready });
      app.use(tokenGuard({ tokens: opts.tokens, throttle: opts.throttle }));
      if (opts.ops) mountFiguresRoutes(app, opts.ops);
    },
  });
}
