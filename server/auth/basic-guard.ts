/**
 * Basic authentication for the mirror's /v2/ API (the `guard` hook of mirror-app.ts).
 *
 * - Writes (POST, PUT, PATCH, DELETE) need valid credentials; reads need them only with
 *   `protectPull`.
 * - `GET /v2/` answers 401 without valid credentials whenever auth is configured, as distribution
 *   does: `docker login` validates credentials against /v2/, and Docker only sends credentials
 *   to a registry whose /v2/ ping returned a challenge. Anonymous pulls still work when pulls are
 *   open: Docker (and skopeo, containerd) fetch manifests and blobs without credentials after a
 *   Basic challenge when they have none.
 * - Wrong credentials are refused on every route, so a mistyped password shows at once.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import { sendError } from '../errors.ts';
import type { Htpasswd } from './htpasswd.ts';

export interface BasicGuardOptions {
  htpasswd: Htpasswd;
  realm: string;
  protectPull: boolean;
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!m) return undefined;
  const text = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export function basicGuard(opts: BasicGuardOptions): RequestHandler {
  const challenge = `Basic realm="${opts.realm.replace(/["\\]/g, '')}", charset="UTF-8"`;
  const refuse = (res: Response, message: string): void => {
    res.locals.errorCode = 'UNAUTHORIZED';
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    sendError(res, new RegistryError('UNAUTHORIZED', message, undefined, { headers: { 'WWW-Authenticate': challenge } }));
  };
  return (req: Request, res: Response, next: NextFunction) => {
    const needed = WRITES.has(req.method) || opts.protectPull || req.path === '/' || req.path === '';
    const header = req.headers.authorization;
    const creds = parseBasic(header);
    if (header !== undefined && creds === undefined && needed) {
      refuse(res, 'only Basic authentication is accepted');
      return;
    }
    if (!creds) {
      if (needed) refuse(res, 'authentication required');
      else next();
      return;
    }
    opts.htpasswd.verify(creds.user, creds.password).then((ok) => {
      if (!ok) {
        req.log?.warn({ user: creds.user, method: req.method, path: req.originalUrl }, 'authentication failed');
        refuse(res, 'invalid username or password');
        return;
      }
      res.locals.user = creds.user;
      next();
    }, next);
  };
}
