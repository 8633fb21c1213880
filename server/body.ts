/** Reads a small request body (a manifest) with a hard limit, never buffering more than it. */
import type { Request } from 'express';
import { RegistryError } from '../lib/oci/errors.ts';

/** How long a refused body is still read (and thrown away) so a client that reads only after sending sees the answer. */
const REFUSED_BODY_LINGER_MS = 10_000;

/**
 * Bytes all bodies being read may hold together: eight manifests at the 4 MiB limit. Past it a
 * body is refused (TOOMANYREQUESTS, retry in a second) instead of holding memory for slow senders.
 */
const BUFFERED_BODIES_BUDGET = 32 * 1024 * 1024;
let buffered = 0;

/**
 * The body, or SIZE_INVALID (413) as soon as it is known to pass the limit: from Content-Length
 * before a byte is read, else at the first chunk over it. `check` sees each chunk as it arrives
 * and refuses the body by throwing (a manifest nested too deep), so a body refused by its
 * content is not held whole either. The answer goes out at once; see discardBody for the rest of
 * the body.
 */
export function readBody(req: Request, limit: number, check?: (chunk: Buffer) => void): Promise<Buffer> {
  const tooLarge = (what: string): RegistryError =>
    new RegistryError('BODY_TOO_LARGE', `${what} exceeds the limit of ${limit} bytes`, { limit });
  const declared = req.headers['content-length'] ? Number(req.headers['content-length']) : undefined;
  if (declared !== undefined && declared > limit) {
    discardBody(req);
    return Promise.reject(tooLarge(`body of ${declared} bytes`));
  }
  const refusedByContent = (chunk: Buffer): unknown => {
    try {
      check?.(chunk);
      return undefined;
    } catch (e) {
      return e;
    }
  };
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (): void => {
      buffered -= size;
      size = 0;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      const refusal = size + chunk.length > limit
        ? tooLarge('body')
        : buffered + chunk.length > BUFFERED_BODIES_BUDGET
          ? new RegistryError('BODIES_BUFFERED_BUDGET', 'too many request bodies being received at once; retry', undefined, { headers: { 'Retry-After': '1' } })
          : refusedByContent(chunk);
      if (refusal === undefined) {
        size += chunk.length;
        buffered += chunk.length;
        chunks.push(chunk);
        return;
      }
      settle();
      chunks.length = 0;
      discardBody(req);
      reject(refusal);
    };
    const onEnd = (): void => {
      const body = Buffer.concat(chunks, size);
      settle();
      resolve(body);
    };
    const onError = (err: Error): void => {
      settle();
      reject(err);
    };
    const onAborted = (): void => onError(Object.assign(new Error('request aborted'), { code: 'ECONNRESET' }));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('aborted', onAborted);
  });
}

/**
 * Throws away the rest of a refused body without destroying the request (that would reset the
 * connection and lose the answer): a client that sends everything before it reads still gets the
 * 413. A body still arriving REFUSED_BODY_LINGER_MS after that is cut with its connection.
 */
export function discardBody(req: Request): void {
  req.resume();
  if (req.complete) return;
  const timer = setTimeout(() => {
    if (!req.complete) req.socket.destroy();
  }, REFUSED_BODY_LINGER_MS);
  timer.unref();
  const stop = (): void => clearTimeout(timer);
  req.once('end', stop);
  req.once('close', stop);
}

/** Content-Length as a number, undefined when absent; SIZE_INVALID when malformed. */
export function contentLength(req: Request): number | undefined {
  const h = req.headers['content-length'];
  if (h === undefined) return undefined;
  const n = Number(h);
  if (!Number.isSafeInteger(n) || n < 0) throw new RegistryError('SIZE_INVALID', `invalid Content-Length ${h}`);
  return n;
}

/** Whether the request carries a body (a length above zero or a chunked stream). */
export function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}
