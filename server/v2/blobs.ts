/** GET/HEAD /v2/<name>/blobs/<digest>, with single byte ranges; DELETE where pushes are served. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../../lib/oci/errors.ts';
import { parseRange } from '../../lib/oci/range.ts';
import type { PullBackend, PushBackend } from '../../lib/registry/types.ts';
import type { BlobStream } from '../../lib/storage/storage.ts';
import { requestContext } from './manifests.ts';
import type { MethodTable } from './router.ts';

/** How long a GET waits for the first byte of a transfer before sending its headers anyway. */
const FIRST_BYTE_WAIT_MS = 10_000;

export function blobHandlers(backend: PullBackend): Required<Pick<MethodTable, 'GET'>> {
  return {
    async GET(req, res, { name = '', digest = '' }) {
      const blob = await backend.getBlob(name, digest, { ...requestContext(req), head: req.method === 'HEAD' });
      // A transfer that fails at once (a full disk, a refusal) is answered as an error, not a cut body;
      // a slow one gets its headers before containerd's 30 s patience runs out.
      if (req.method !== 'HEAD') await blob.ready?.(FIRST_BYTE_WAIT_MS);
      const etag = `"${blob.digest}"`;
      const range = parseRange(req.headers.range, blob.size);
      const sendsBody = req.method !== 'HEAD' && blob.size > 0 && req.headers['if-none-match'] !== etag && range.kind !== 'unsatisfiable';
      // The store set to redirect: the client fetches the bytes from it (ranges too).
      const location = sendsBody && blob.redirectUrl ? await blob.redirectUrl() : undefined;
      if (location !== undefined && followable(req, location)) {
        res.status(307).setHeader('Location', location).setHeader('Docker-Content-Digest', blob.digest).setHeader('Content-Length', 0).end();
        return;
      }
      let start = 0;
      let end = blob.size - 1;
      if (range.kind === 'partial') ({ start, end } = range.range);
      // Opened before any header is set: a blob gone since getBlob is still a clean 404.
      const stream = sendsBody ? await blob.open(range.kind === 'partial' ? range.range : undefined) : undefined;
      let streamTaken = false;
      try {
        res.setHeader('Docker-Content-Digest', blob.digest);
        res.setHeader('ETag', etag);
        res.setHeader('Accept-Ranges', 'bytes');
        res.setHeader('Content-Type', 'application/octet-stream');
        // Immutable content: caches in between may keep it for good.
        res.setHeader('Cache-Control', 'max-age=31536000');
        if (req.headers['if-none-match'] === etag) {
          res.status(304).end();
          return;
        }
        if (range.kind === 'unsatisfiable') {
          throw new RegistryError('RANGE_INVALID', `range ${req.headers.range} is not satisfiable for ${blob.size} bytes`, undefined, {
            headers: { 'Content-Range': `bytes */${blob.size}` },
          });
        }
        if (range.kind === 'partial') res.status(206).setHeader('Content-Range', `bytes ${start}-${end}/${blob.size}`);
        else res.status(200);
        res.setHeader('Content-Length', blob.size === 0 ? 0 : end - start + 1);
        if (stream === undefined) {
          res.end();
          return;
        }
        streamTaken = true;
        await send(res, stream, blob.ready !== undefined);
      } finally {
        if (stream !== undefined && !streamTaken) stream.destroy();
      }
    },
  };
}

export function blobPushHandlers(backend: PushBackend): Required<Pick<MethodTable, 'DELETE'>> {
  return {
    async DELETE(_req, res, { name = '', digest = '' }) {
      await backend.deleteBlob(name, digest);
      res.status(202).setHeader('Content-Length', 0).end();
    },
  };
}

/**
 * Whether a client may follow a redirect to location. One that sent an Authorization header sends
 * it again to a URL on the same host name (Go's clients drop it only for another host), and RGW
 * answers a presigned request that carries one 400 InvalidArgument: such a request is streamed.
 */
function followable(req: IncomingMessage, location: string): boolean {
  if (req.headers.authorization === undefined) return true;
  // No Host (HTTP/1.0) or one that is no host: the client cannot be told apart, so it is streamed to.
  const asked = `http://${req.headers.host ?? ''}`;
  return URL.canParse(asked) && new URL(location).hostname !== new URL(asked).hostname;
}

/**
 * Sends the stream as the body: by the storage's fast path when it has one, else piped. A blob
 * still `arriving` from upstream may take long for its first byte, so it and a piped body send
 * the headers first (containerd gives up after 30 s without them). A failure mid-body cuts the
 * connection (its length was promised; nothing to render).
 */
async function send(res: ServerResponse, stream: BlobStream, arriving: boolean): Promise<void> {
  if (stream.writeTo) {
    if (arriving) res.flushHeaders();
    await stream.writeTo(res).catch((e: unknown) => {
      res.destroy(e as Error);
    });
    return;
  }
  res.on('close', () => stream.destroy());
  res.flushHeaders();
  try {
    await pipeline(stream, res);
  } catch (e) {
    res.destroy(e as Error);
  }
}
