/** The one place registry errors become HTTP responses: the spec's JSON error form. */
import type { ErrorRequestHandler, Response } from 'express';
import { RegistryError, isRegistryError } from '../lib/oci/errors.ts';

export function sendError(res: Response, err: RegistryError): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  const body = JSON.stringify(err.toJSON());
  res.status(err.status);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Anything not a RegistryError is a bug or an I/O failure: UNKNOWN/500, logged with its stack. */
export const errorMiddleware: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  if (isRegistryError(err)) {
    res.locals.errorCode = err.code;
    sendError(res, err);
    return;
  }
  const e = err as { type?: string; status?: number; message?: string };
  // Body-parser style errors and aborted requests are the client's doing.
  if (e?.type === 'request.aborted' || (err as NodeJS.ErrnoException)?.code === 'ECONNRESET') {
    res.destroy();
    return;
  }
  req.log?.error({ err }, 'unexpected error');
  res.locals.errorCode = 'UNKNOWN';
  sendError(res, new RegistryError('UNKNOWN', 'internal error'));
};
