/** The push protocol: POST, PATCH, PUT, GET and DELETE on /v2/<name>/blobs/uploads/. */
import type { Request, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import { isDigest, requireDigest } from '../../lib/oci/digest.ts';
import { isValidName } from '../../lib/oci/names.ts';
import { parseContentRange } from '../../lib/oci/range.ts';
import type { PushBackend } from '../../lib/registry/types.ts';
import type { ByteRange, UploadState } from '../../lib/storage/storage.ts';
import { uploadHeaders } from '../../lib/storage/upload-sessions.ts';
import { contentLength, hasBody } from '../body.ts';
import type { MethodTable } from './router.ts';

function sendUploadState(res: Response, name: string, state: UploadState, status: number): void {
  for (const [k, v] of Object.entries(uploadHeaders(name, state))) res.setHeader(k, v);
  res.status(status).setHeader('Content-Length', 0).end();
}

function sendBlobCreated(res: Response, name: string, digest: string): void {
  res.setHeader('Location', `/v2/${name}/blobs/${digest}`);
  res.setHeader('Docker-Content-Digest', digest);
  res.status(201).setHeader('Content-Length', 0).end();
}

/** Who a request comes from, for what one client may hold: the authenticated user, else the address. */
function clientOf(req: Request, res: Response): string {
  const user = res.locals.user as string | undefined;
  return user !== undefined ? `user:${user}` : `address:${req.socket.remoteAddress ?? 'unknown'}`;
}

function queryString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function uploadHandlers(backend: PushBackend) {
  /** The chunk's Content-Range; a malformed one is a 416 that tells the client where the upload stands. */
  async function chunkRange(req: Request, name: string, uuid: string): Promise<ByteRange | undefined> {
    const range = parseContentRange(req.headers['content-range']);
    if (range !== 'invalid') return range;
    req.resume();
    const state = await backend.uploadStatus(name, uuid);
    throw new RegistryError('RANGE_INVALID', `invalid Content-Range ${req.headers['content-range']}`, undefined, { headers: uploadHeaders(name, state) });
  }

  const handlers = {
    async start(req, res, { name = '' }) {
      const mount = queryString(req.query.mount);
      const from = queryString(req.query.from);
      const digest = queryString(req.query.digest);
      if (mount !== undefined) {
        // A mount that cannot be done, its arguments malformed included, falls back to a session (spec).
        const mountable = isDigest(mount) && (from === undefined || isValidName(from));
        const mounted = mountable ? await backend.mountBlob(name, mount, from) : undefined;
        if (mounted) {
          req.resume();
          sendBlobCreated(res, name, mounted.digest);
          return;
        }
      } else if (digest !== undefined) {
        requireDigest(digest);
        const result = await backend.uploadMonolithic(name, digest, req, contentLength(req));
        sendBlobCreated(res, name, result.digest);
        return;
      }
      req.resume();
      const state = await backend.startUpload(name, clientOf(req, res));
      sendUploadState(res, name, state, 202);
    },

    async patch(req, res, { name = '', uuid = '' }) {
      const range = await chunkRange(req, name, uuid);
      const state = await backend.appendUpload(name, uuid, req, range, contentLength(req));
      sendUploadState(res, name, state, 202);
    },

    async complete(req, res, { name = '', uuid = '' }) {
      const digest = queryString(req.query.digest);
      if (digest === undefined) {
        req.resume();
        throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
      }
      requireDigest(digest);
      const body = hasBody(req) ? req : undefined;
      if (!body) req.resume();
      const range = await chunkRange(req, name, uuid);
      if (body && range) {
        await backend.appendUpload(name, uuid, body, range, contentLength(req));
        const result = await backend.completeUpload(name, uuid, digest);
        sendBlobCreated(res, name, result.digest);
        return;
      }
      const result = await backend.completeUpload(name, uuid, digest, body, body ? contentLength(req) : undefined);
      sendBlobCreated(res, name, result.digest);
    },

    async status(_req, res, { name = '', uuid = '' }) {
      const state = await backend.uploadStatus(name, uuid);
      sendUploadState(res, name, state, 204);
    },

    async cancel(_req, res, { name = '', uuid = '' }) {
      await backend.cancelUpload(name, uuid);
      res.status(204).setHeader('Content-Length', 0).end();
    },
  } satisfies Record<string, NonNullable<MethodTable['GET']>>;
  return handlers;
}
