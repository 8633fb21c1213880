/** The express app of a role (mirror or relay): its /v2/ route table, plus what the role and the ops layer mount beside it. */
import express, { type Express, type RequestHandler } from 'express';
import { RegistryError } from '../lib/oci/errors.ts';
import type { Logger } from '../lib/log/logger.ts';
import { silentLogger } from '../lib/log/logger.ts';
import { limitsSchema, type LimitsConfig } from '../lib/config/schema.ts';
import { accessLog, type RequestObserver } from './access-log.ts';
import { bodyDeadline } from './body-deadline.ts';
import { errorMiddleware } from './errors.ts';
import { v2Router, type V2Backends } from './v2/router.ts';

export interface AppOptions extends V2Backends {
  logger?: Logger;
  observe?: RequestObserver;
  /** Runs before /v2/ (authentication). */
  guard?: RequestHandler;
  /** Mounted ahead of everything else: routes outside /v2/ (metrics, status page), the relay's token guard. */
  extra?: (app: Express) => void;
  /** Request bodies slower than this are cut (config limits; its defaults when absent). */
  limits?: Pick<LimitsConfig, 'bodyTimeoutSeconds' | 'bodyMinBytesPerSecond'>;
}

export function createApp(opts: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(accessLog(opts.logger ?? silentLogger, opts.observe));
  const limits = opts.limits ?? limitsSchema.parse({});
  app.use(bodyDeadline({ windowMs: limits.bodyTimeoutSeconds * 1000, minBytesPerSecond: limits.bodyMinBytesPerSecond }));
  opts.extra?.(app);
  if (opts.guard) app.use('/v2', opts.guard);
  app.use('/v2', v2Router(opts));
  // Whatever nothing above served still gets the JSON error form, not express's HTML page.
  app.use((req, _res, next) => next(new RegistryError('NO_SUCH_ENDPOINT', `no such endpoint: ${req.method} ${req.path}`)));
  app.use(errorMiddleware);
  return app;
}
