/**
 * The HTTP edge of every failure: one mapping from what lib/ throws to the spec's JSON error
 * form. A RegistryError carries its situation; an upstream or transfer failure is mapped to one
 * by the tables below; anything else is a bug: 500 `internal error` to the client (never the
 * error's own message), its stack in the log.
 */
import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, Response } from 'express';
import { RegistryError, isRegistryError, type Situation } from '../lib/oci/errors.ts';
import {
  UpstreamError, UpstreamNotFoundError, UpstreamRateLimitedError, UpstreamUnavailableError,
  type UpstreamResource,
} from '../lib/upstream/errors.ts';
import { TransferError, type UpstreamStatusError } from '../lib/transfer/errors.ts';

const NOT_FOUND: Record<UpstreamResource, Situation> = {
  manifest: 'MANIFEST_UNKNOWN',
  blob: 'BLOB_UNKNOWN',
  repository: 'UPSTREAM_NAME_UNKNOWN',
};

/** UpstreamError code -> situation. */
const UPSTREAM: Record<string, (e: UpstreamError) => Situation> = {
  UPSTREAM_NOT_FOUND: (e) => NOT_FOUND[(e as UpstreamNotFoundError).resource],
  UPSTREAM_AUTH: () => 'UPSTREAM_DENIED',
  UPSTREAM_RATE_LIMITED: () => 'UPSTREAM_RATE_LIMITED',
  // One we could not reach at all is unavailable; one that answered 5xx is a bad gateway.
  UPSTREAM_UNAVAILABLE: (e) => (e.status === undefined ? 'UPSTREAM_UNREACHABLE' : 'UPSTREAM_FAILED'),
  UPSTREAM_PROTOCOL: () => 'UPSTREAM_FAILED',
};

/** TransferError code -> situation (UPSTREAM_REQUEST and RETRIES_EXHAUSTED go by their cause). */
const TRANSFER: Record<string, (e: TransferError) => Situation> = {
  DIGEST_MISMATCH: () => 'UPSTREAM_BAD_CONTENT',
  SIZE_MISMATCH: () => 'UPSTREAM_BAD_CONTENT',
  TRANSFER_ABORTED: () => 'SHUTTING_DOWN',
  TRANSFER_DEADLINE: () => 'TRANSFER_GAVE_UP',
  LOCAL_IO: () => 'STORAGE_FAILED',
  UPSTREAM_STATUS: (e) => statusSituation((e as UpstreamStatusError).status),
  CONTENT_RANGE_INVALID: () => 'UPSTREAM_FAILED',
  RANGE_IGNORED: () => 'UPSTREAM_FAILED',
  STALLED: () => 'TRANSFER_GAVE_UP',
  PREMATURE_END: () => 'TRANSFER_GAVE_UP',
};

function statusSituation(status: number): Situation {
  if (status === 404) return 'BLOB_UNKNOWN';
  if (status === 401 || status === 403) return 'UPSTREAM_DENIED';
  if (status === 429) return 'UPSTREAM_RATE_LIMITED';
  return 'UPSTREAM_FAILED';
}

function upstreamDetail(e: UpstreamError): Record<string, unknown> {
  return { upstream: e.upstream, ...(e.status !== undefined ? { status: e.status } : {}) };
}

/**
 * What a client is told about `err`: a RegistryError as it is, an upstream or transfer failure by
 * the tables, anything else as INTERNAL (undefined is returned for those, so the caller logs them).
 */
export function toRegistryError(err: unknown): RegistryError {
  return knownError(err) ?? new RegistryError('INTERNAL', 'internal error');
}

function knownError(err: unknown, depth = 0): RegistryError | undefined {
  if (isRegistryError(err)) return err;
  if (depth > 3) return undefined;
  if (err instanceof UpstreamError) {
    const situation = UPSTREAM[err.code]?.(err);
    if (!situation) return undefined;
    const detail = err instanceof UpstreamNotFoundError ? { ...upstreamDetail(err), [err.resource]: err.ref } : upstreamDetail(err);
    const retryAfterMs = err instanceof UpstreamRateLimitedError || err instanceof UpstreamUnavailableError ? err.retryAfterMs : undefined;
    const headers: Record<string, string> = situation === 'UPSTREAM_RATE_LIMITED' && retryAfterMs !== undefined
      ? { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) }
      : {};
    return new RegistryError(situation, err.message, detail, { headers, cause: err });
  }
  if (err instanceof TransferError) {
    // A wrapper: the client is told about what it wraps, in the wrapper's words when that is unknown.
    // A status the engine judged for an upstream client's failure: told by that failure (unreachable is 503, not 502).
    if (err.code === 'UPSTREAM_STATUS' && err.cause instanceof UpstreamError) return knownError(err.cause, depth + 1);
    if (err.code === 'UPSTREAM_REQUEST' || err.code === 'RETRIES_EXHAUSTED') {
      const inner = knownError(err.cause, depth + 1);
      if (inner && err.code === 'UPSTREAM_REQUEST') return inner;
      if (inner) return new RegistryError(inner.situation, err.message, inner.detail, { headers: inner.headers, cause: err });
      return new RegistryError('TRANSFER_GAVE_UP', err.message, undefined, { cause: err });
    }
    const situation = TRANSFER[err.code]?.(err);
    return situation ? new RegistryError(situation, err.message, undefined, { cause: err }) : undefined;
  }
  return undefined;
}

/**
 * The reason phrase of the status line. Docker prints only the status line for some 5xx (not the
 * body), so the message follows the standard phrase there ("503 Service Unavailable: upstream
 * relay: certificate not trusted: ..."); a header must be one line of visible ASCII.
 */
function reasonPhrase(err: RegistryError): string | undefined {
  if (err.status < 500) return undefined;
  const text = err.message.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 200);
  return text.length > 0 ? `${STATUS_CODES[err.status] ?? 'Error'}: ${text}` : undefined;
}

export function sendError(res: Response, err: RegistryError): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  const body = JSON.stringify(err.toJSON());
  res.status(err.status);
  const reason = reasonPhrase(err);
  if (reason !== undefined) res.statusMessage = reason;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Renders every failure of a request; anything unforeseen is logged with its stack. */
export const errorMiddleware: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  // Aborted requests are the client's doing: nobody is left to answer.
  if ((err as { type?: string })?.type === 'request.aborted' || (err as NodeJS.ErrnoException)?.code === 'ECONNRESET') {
    res.destroy();
    return;
  }
  const known = knownError(err);
  const answer = known ?? new RegistryError('INTERNAL', 'internal error');
  if (!known) req.log?.error({ err }, 'unexpected error');
  else if (answer.status >= 500) req.log?.warn({ err, code: answer.code }, answer.message);
  res.locals.errorCode = answer.code;
  sendError(res, answer);
};
