/** GET /v2/<name>/blobs/<digest>/chunks[?size=<bytes>]: the per-chunk digests of a blob the relay holds; a route of the relay's /v2/ table. */
import { RegistryError } from '../../lib/oci/errors.ts';
import { isValidChunkSize } from '../../lib/relay/chunk-list.ts';
import type { RelayBackend } from '../../lib/relay/relay-backend.ts';
import type { V2Handler, V2Route } from '../v2/router.ts';

export function chunksRoute(backend: RelayBackend, defaultChunkBytes: number): V2Route {
  const GET: V2Handler = async (req, res, { name = '', digest = '' }) => {
    const asked = typeof req.query.size === 'string' ? req.query.size : undefined;
    const chunkSize = asked === undefined ? defaultChunkBytes : /^\d+$/.test(asked) ? Number(asked) : NaN;
    if (!isValidChunkSize(chunkSize)) throw new RegistryError('SIZE_INVALID', `chunk size ${asked ?? chunkSize} must be a multiple of 64 KiB up to 1 GiB`);
    const body = JSON.stringify(await backend.chunkDigests(name, digest, chunkSize));
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.setHeader('Cache-Control', 'max-age=31536000');
    res.status(200).end(req.method === 'HEAD' ? undefined : body);
  };
  return { name: 'chunks', pattern: /^\/(.+)\/blobs\/([^/]+)\/chunks$/, keys: ['name', 'digest'], methods: { GET, HEAD: GET } };
}
