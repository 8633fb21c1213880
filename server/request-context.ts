/** Per-request state the middlewares share: an id and a child logger. */
import type { Logger } from '../lib/log/logger.ts';

declare module 'express-serve-static-core' {
  interface Request {
    id: string;
    log: Logger;
  }
}

export {};
