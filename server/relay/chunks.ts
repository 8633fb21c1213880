/** GET /v2/<name>/blobs/<digest>/chunks[?size=<bytes>]: the per-chunk digests of a blob the relay holds. */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import { isValidChunkSize } from '../../lib/relay/chunk-list.ts';
import type { RelayRegistry } from '../../lib/relay/relay-registry.ts';

const CHUNKS_PATH = /^\/(.+)\/blobs\/([^/]+)\/chunks$/;

function decode(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

export function chunksRoute(backend: RelayRegistry, defaultChunkBytes: number): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const match = CHUNKS_PATH.exec(req.path);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) {
      next();
      return;
    }
    const name = decode(match[1] ?? '');
    const digest = decode(match[2] ?? '');
    res.locals.route = 'chunks';
    res.locals.repository = name;
    res.locals.reference = digest;
    const asked = typeof req.query.size === 'string' ? req.query.size : undefined;
    const chunkSize = asked === undefined ? defaultChunkBytes : /^\d+$/.test(asked) ? Number(asked) : NaN;
    if (!isValidChunkSize(chunkSize)) {
      next(new RegistryError('SIZE_INVALID', `chunk size ${asked ?? chunkSize} must be a multiple of 64 KiB up to 1 GiB`));
      return;
    }
    backend.chunkDigests(name, digest, chunkSize).then((list) => {
      const body = JSON.stringify(list);
      res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.setHeader('Cache-Control', 'max-age=31536000');
      res.status(200).end(req.method === 'HEAD' ? undefined : body);
    }).catch(next);
  };
}
