/** GET/HEAD /v2/<name>/manifests/<reference>; PUT and DELETE where pushes are served. */
import type { Request } from 'express';
import { MAX_MANIFEST_BYTES, manifestDepthCheck } from '../../lib/oci/manifest.ts';
import type { PullBackend, PushBackend, RequestContext } from '../../lib/registry/types.ts';
import { readBody } from '../body.ts';
import type { MethodTable } from './router.ts';

export function requestContext(req: Request): RequestContext {
  const ns = typeof req.query.ns === 'string' ? req.query.ns : undefined;
  return ns ? { ns } : {};
}

export function manifestHandlers(backend: PullBackend): Required<Pick<MethodTable, 'GET'>> {
  return {
    async GET(req, res, { name = '', reference = '' }) {
      const m = await backend.getManifest(name, reference, requestContext(req));
      const etag = `"${m.digest}"`;
      res.setHeader('Content-Type', m.mediaType);
      res.setHeader('Docker-Content-Digest', m.digest);
      res.setHeader('ETag', etag);
      res.setHeader('Content-Length', m.size);
      if (req.headers['if-none-match'] === etag) {
        res.status(304).end();
        return;
      }
      res.status(200).end(req.method === 'HEAD' ? undefined : m.bytes);
    },
  };
}

export function manifestPushHandlers(backend: PushBackend): Required<Pick<MethodTable, 'PUT' | 'DELETE'>> {
  return {
    async PUT(req, res, { name = '', reference = '' }) {
      const body = await readBody(req, MAX_MANIFEST_BYTES, manifestDepthCheck());
      const { digest, subject } = await backend.putManifest(name, reference, body, req.headers['content-type']);
      res.setHeader('Location', `/v2/${name}/manifests/${digest}`);
      res.setHeader('Docker-Content-Digest', digest);
      if (subject) res.setHeader('OCI-Subject', subject);
      res.status(201).setHeader('Content-Length', 0).end();
    },

    async DELETE(_req, res, { name = '', reference = '' }) {
      await backend.deleteManifest(name, reference);
      res.status(202).setHeader('Content-Length', 0).end();
    },
  };
}
