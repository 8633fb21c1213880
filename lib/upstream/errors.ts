/**
 * Every failure of the upstream client, in one file, each with a stable `code`, the upstream's
 * name and the status it answered (when it answered). toRegistryError() is the one place they
 * become what a Docker client sees: a broken upstream is the mirror's problem (502/503), never a
 * 401 that would make docker ask for credentials of the mirror itself.
 */
import { RegistryError, isRegistryError } from '../oci/errors.ts';

export abstract class UpstreamError extends Error {
  abstract readonly code: string;
  constructor(readonly upstream: string, message: string, readonly status?: number, options?: ErrorOptions) {
    super(`upstream ${upstream}: ${message}`, options);
  }
}

export type UpstreamResource = 'manifest' | 'blob' | 'repository';

/** 404: the manifest, blob or repository does not exist upstream. */
export class UpstreamNotFoundError extends UpstreamError {
  readonly code = 'UPSTREAM_NOT_FOUND';
  constructor(upstream: string, readonly resource: UpstreamResource, readonly ref: string) {
    super(upstream, `${resource} ${ref} not found`, 404);
    this.name = 'UpstreamNotFoundError';
  }
}

/**
 * The upstream refused our credentials (or has none for us). `insufficientScope` is Docker Hub's
 * way of saying "does not exist, or is private": a token was granted but not for this repository.
 */
export class UpstreamAuthError extends UpstreamError {
  readonly code = 'UPSTREAM_AUTH';
  constructor(upstream: string, message: string, status?: number, readonly insufficientScope = false) {
    super(upstream, message, status);
    this.name = 'UpstreamAuthError';
  }
}

/**
 * Unreachable, reset, timed out (no `status`), or 5xx/408/425 (with it), after the retries.
 * `cause` is the network failure; `retryAfterMs` what a 503 asked for.
 */
export class UpstreamUnavailableError extends UpstreamError {
  readonly code = 'UPSTREAM_UNAVAILABLE';
  readonly retryAfterMs: number | undefined;
  constructor(upstream: string, message: string, status?: number, options?: ErrorOptions & { retryAfterMs?: number | undefined }) {
    super(upstream, message, status, options);
    this.name = 'UpstreamUnavailableError';
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** 429 after the retries, or with a Retry-After longer than we are willing to wait. */
export class UpstreamRateLimitedError extends UpstreamError {
  readonly code = 'UPSTREAM_RATE_LIMITED';
  constructor(upstream: string, readonly retryAfterMs?: number) {
    super(upstream, `rate limited${retryAfterMs !== undefined ? ` (retry after ${Math.ceil(retryAfterMs / 1000)}s)` : ''}`, 429);
    this.name = 'UpstreamRateLimitedError';
  }
}

/** The upstream answered something we must not pass on: a wrong digest, an oversize manifest, a redirect loop. */
export class UpstreamProtocolError extends UpstreamError {
  readonly code = 'UPSTREAM_PROTOCOL';
  constructor(upstream: string, message: string, status?: number, readonly detail?: Record<string, unknown>) {
    super(upstream, message, status);
    this.name = 'UpstreamProtocolError';
  }
}

export const isUpstreamError = (e: unknown): e is UpstreamError => e instanceof UpstreamError;

export type RegistryWhat = 'manifest' | 'blob' | 'tags';

const UNKNOWN_CODE = { manifest: 'MANIFEST_UNKNOWN', blob: 'BLOB_UNKNOWN', tags: 'NAME_UNKNOWN' } as const;

/**
 * Maps an upstream failure to the registry error the mirror answers with. Auth failures become
 * DENIED (403): a 401 would make docker retry with the credentials of the mirror, which cannot help.
 */
export function toRegistryError(e: unknown, what: RegistryWhat): RegistryError {
  if (isRegistryError(e)) return e;
  if (!(e instanceof UpstreamError)) {
    return new RegistryError('UNKNOWN', e instanceof Error ? e.message : String(e));
  }
  const detail = { upstream: e.upstream, ...(e.status !== undefined ? { status: e.status } : {}) };
  if (e instanceof UpstreamNotFoundError) return new RegistryError(UNKNOWN_CODE[what], e.message, { ...detail, [e.resource]: e.ref });
  if (e instanceof UpstreamAuthError) {
    const why = e.insufficientScope ? 'the repository does not exist there or needs credentials' : 'check its credentials in the configuration';
    return new RegistryError('DENIED', `${e.message} (${why})`, detail);
  }
  if (e instanceof UpstreamRateLimitedError) {
    const headers: Record<string, string> = e.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(e.retryAfterMs / 1000)) } : {};
    return new RegistryError('TOOMANYREQUESTS', e.message, detail, { headers });
  }
  // An upstream that answered 5xx is a bad gateway; one we could not reach at all is unavailable.
  if (e instanceof UpstreamUnavailableError && e.status === undefined) return new RegistryError('UNAVAILABLE', e.message, detail);
  return new RegistryError('UPSTREAM_ERROR', e.message, detail);
}
