/**
 * Every failure of the upstream client, in one file, each with a stable `code`, the upstream's
 * name and the status it answered (when it answered). server/errors.ts maps them to what a
 * Docker client sees: a broken upstream is the mirror's problem (502/503), never a 401 that
 * would make docker ask for credentials of the mirror itself.
 */

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
  /** `reason` is the upstream's own word (its error message): passed on, it says more than a guess. */
  constructor(upstream: string, message: string, status?: number, readonly insufficientScope = false, readonly reason?: string) {
    super(upstream, `${message}${reason ? `: ${reason}` : ` (${authHint(insufficientScope)})`}`, status);
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

function authHint(insufficientScope: boolean): string {
  return insufficientScope ? 'the repository does not exist there or needs credentials' : 'check its credentials in the configuration';
}

