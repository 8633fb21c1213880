/**
 * Every relay request must carry `Authorization: Bearer <token>` with an accepted token, /v2/
 * included. A refused request learns nothing but that (401, UNAUTHORIZED, the Bearer challenge),
 * and is answered late when its address keeps failing (FailureThrottle), so guessing is slow.
 */
import type { RequestHandler } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import type { FailureThrottle } from '../../lib/relay/failure-throttle.ts';
import { bearerToken, type TokenSet } from '../../lib/relay/tokens.ts';
import { sendError } from '../errors.ts';
import '../request-context.ts';

export const RELAY_REALM = 'ferry-relay';

export interface TokenGuardOptions {
  tokens: TokenSet;
  throttle: FailureThrottle;
}

export function tokenGuard(opts: TokenGuardOptions): RequestHandler {
  return (req, res, next) => {
    if (opts.tokens.verify(bearerToken(req.headers.authorization))) {
      next();
      return;
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const delayMs = opts.throttle.fail(address);
    req.log.warn({ address, delayMs, hadToken: req.headers.authorization !== undefined }, 'refused: no valid relay token');
    res.locals.errorCode = 'UNAUTHORIZED';
    // A body we will not read must not hold the connection (and its buffers) meanwhile.
    req.resume();
    const err = new RegistryError('UNAUTHORIZED', 'a valid relay token is required', undefined, {
      headers: { 'WWW-Authenticate': `Bearer realm="${RELAY_REALM}"` },
    });
    const answer = (): void => {
      if (!res.destroyed && !res.writableEnded) sendError(res, err);
    };
    if (delayMs > 0) setTimeout(answer, delayMs).unref();
    else answer();
  };
}
