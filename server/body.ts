/** Reads a small request body (a manifest) with a hard limit, never buffering more than it. */
import type { Request } from 'express';
import { RegistryError } from '../lib/oci/errors.ts';

export async function readBody(req: Request, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'] ? Number(req.headers['content-length']) : undefined;
  if (declared !== undefined && declared > limit) {
    req.resume();
    throw new RegistryError('BODY_TOO_LARGE', `body of ${declared} bytes exceeds the limit of ${limit}`, { limit });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new RegistryError('BODY_TOO_LARGE', `body exceeds the limit of ${limit} bytes`, { limit });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
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
