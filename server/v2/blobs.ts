/** GET/HEAD /v2/<name>/blobs/<digest>, with single byte ranges; DELETE where pushes are served. */
import { close } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../../lib/oci/errors.ts';
import { parseRange } from '../../lib/oci/range.ts';
import type { PullBackend, PushBackend } from '../../lib/registry/types.ts';
import { isNotFound } from '../../lib/storage/atomic.ts';
import { requestContext } from './manifests.ts';
import type { MethodTable } from './router.ts';
import { openForSend, sendFileRange } from './send-file.ts';

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
      const sendsBody = req.method !== 'HEAD' && blob.size > 0 && req.headers['if-none-match'] !== etag;
      // A stored blob is opened before any header is set: one gone since getBlob is still a clean 404.
      const fd = sendsBody && blob.path !== undefined ? await openStored(blob.path, blob.digest) : undefined;
      let fdTaken = false;
      try {
        const range = parseRange(req.headers.range, blob.size);
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
        let start = 0;
        let end = blob.size - 1;
        if (range.kind === 'partial') {
          ({ start, end } = range.range);
          res.status(206).setHeader('Content-Range', `bytes ${start}-${end}/${blob.size}`);
        } else {
          res.status(200);
        }
        res.setHeader('Content-Length', blob.size === 0 ? 0 : end - start + 1);
        if (req.method === 'HEAD' || blob.size === 0) {
          res.end();
          return;
        }
        if (fd !== undefined) {
          fdTaken = true;
          await sendFileRange(res, fd, start, end).catch((e: unknown) => {
            // The length was promised and part of the body may be out: cut the connection.
            res.destroy(e as Error);
          });
          return;
        }
        const stream = blob.open(start, end);
        res.on('close', () => stream.destroy());
        // A blob still arriving from upstream may take long for its first byte: send the headers
        // now (containerd gives up after 30 s without them).
        res.flushHeaders();
        try {
          await pipeline(stream, res);
        } catch (e) {
          // The client left or the source failed mid-body: the connection is cut, nothing to render.
          res.destroy(e as Error);
        }
      } finally {
        if (fd !== undefined && !fdTaken) close(fd, () => {});
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

async function openStored(path: string, digest: string): Promise<number> {
  try {
    return await openForSend(path);
  } catch (e) {
    if (isNotFound(e)) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
    throw e;
  }
}
