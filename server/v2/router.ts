/**
 * Dispatches /v2/ paths. Repository names contain slashes, so routes are matched here with
 * anchored patterns (the reference, digest or uuid never contains a slash) rather than by express.
 * Patterns match the path as sent and each parameter is decoded on its own, so an encoded slash
 * in a digest or reference stays inside that parameter (and fails its validation).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import type { PullBackend, PushBackend } from '../../lib/registry/types.ts';
import { blobHandlers, blobPushHandlers } from './blobs.ts';
import { listingHandlers } from './listing.ts';
import { manifestHandlers, manifestPushHandlers } from './manifests.ts';
import { uploadHandlers } from './uploads.ts';

export type Params = Record<string, string>;
export type V2Handler = (req: Request, res: Response, params: Params) => Promise<void>;
export type MethodTable = Partial<Record<'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', V2Handler>>;

/** One entry of the /v2/ route table: a path pattern (matched as sent), its parameters, its methods. */
export interface V2Route {
  name: string;
  pattern: RegExp;
  keys: string[];
  methods: MethodTable;
}

export interface V2Backends {
  pull: PullBackend;
  /** Absent on a pull-only registry (the relay): push routes then answer UNSUPPORTED (405). */
  push?: PushBackend;
  /** A role's own routes (the relay's /chunks), matched before the standard ones. */
  routes?: V2Route[];
}

export function v2Router({ pull, push, routes: extra = [] }: V2Backends): RequestHandler {
  const m = manifestHandlers(pull);
  const b = blobHandlers(pull);
  const l = listingHandlers(pull);
  const mp = push && manifestPushHandlers(push);
  const bp = push && blobPushHandlers(push);
  const u = push && uploadHandlers(push);
  const routes: V2Route[] = [
    ...extra,
    { name: 'base', pattern: /^\/$/, keys: [], methods: { GET: l.base, HEAD: l.base } },
    { name: 'catalog', pattern: /^\/_catalog$/, keys: [], methods: { ...(l.catalog && { GET: l.catalog }) } },
    { name: 'tags', pattern: /^\/(.+)\/tags\/list$/, keys: ['name'], methods: { GET: l.tags } },
    { name: 'manifest', pattern: /^\/(.+)\/manifests\/([^/]+)$/, keys: ['name', 'reference'], methods: { GET: m.GET, HEAD: m.GET, ...mp } },
    { name: 'upload-start', pattern: /^\/(.+)\/blobs\/uploads\/?$/, keys: ['name'], methods: { ...(u && { POST: u.start }) } },
    { name: 'upload', pattern: /^\/(.+)\/blobs\/uploads\/([^/]+)$/, keys: ['name', 'uuid'], methods: { ...(u && { GET: u.status, PATCH: u.patch, PUT: u.complete, DELETE: u.cancel }) } },
    { name: 'blob', pattern: /^\/(.+)\/blobs\/([^/]+)$/, keys: ['name', 'digest'], methods: { GET: b.GET, HEAD: b.GET, ...bp } },
    { name: 'referrers', pattern: /^\/(.+)\/referrers\/([^/]+)$/, keys: ['name', 'digest'], methods: { ...(l.referrers && { GET: l.referrers }) } },
  ];
  const served = push ? '' : ' (this registry serves pulls only)';

  return (req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    for (const route of routes) {
      const match = route.pattern.exec(req.path);
      if (!match) continue;
      res.locals.route = route.name;
      const params: Params = {};
      route.keys.forEach((k, i) => { params[k] = safeDecode(match[i + 1] ?? ''); });
      res.locals.repository = params.name;
      res.locals.reference = params.reference ?? params.digest;
      // HEAD is GET without the body (node drops it) wherever GET is served.
      const handler = route.methods[req.method as keyof MethodTable] ?? (req.method === 'HEAD' ? route.methods.GET : undefined);
      if (!handler) {
        const allowed = Object.keys(route.methods);
        if (route.methods.GET && !route.methods.HEAD) allowed.splice(1, 0, 'HEAD');
        res.setHeader('Allow', allowed.join(', '));
        // A body we will not read must not hold the connection meanwhile.
        req.resume();
        next(new RegistryError('UNSUPPORTED', `${req.method} is not supported on ${route.name}${served}`));
        return;
      }
      handler(req, res, params).catch(next);
      return;
    }
    // A digest never holds a slash: "blobs/sha256:../../x" is a bad digest, not a missing endpoint.
    const digestLike = /\/(?:blobs|manifests|referrers)\/([^/]*:.*)$/.exec(req.path);
    if (digestLike) {
      next(new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(safeDecode(digestLike[1] ?? ''))}`));
      return;
    }
    next(new RegistryError('NO_SUCH_ENDPOINT', `no such endpoint: ${req.method} /v2${req.path}`));
  };
}

/** A /v2/ path or path segment, percent-decoded where it decodes (as it came where it does not). */
export function safeDecode(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}
